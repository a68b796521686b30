// The event wall: the album full screen, one picture after another, following the album live.
//
// It cycles through the whole album, newest first, a page of the feed at a time, and starts
// again from the newest at the end. Every few seconds it asks the feed whether the album
// changed (If-None-Match: an unchanged album costs the server a 304). When it did, pictures the
// wall has not met (new arrivals) and pictures approved or shown again (the moderation journal)
// are shown next, and the pictures it holds are checked: hidden or deleted ones leave at once,
// even the one on screen. See albums/wall.py and docs/pages.md.
(function () {
  "use strict";
  const body = document.body;
  const feedUrl = body.dataset.feedUrl;
  const interval = Number(body.dataset.interval || 8) * 1000;
  const pollEvery = Number(body.dataset.poll || 2) * 1000;
  const stage = document.getElementById("stage");
  const slide = document.getElementById("slide");
  const empty = document.getElementById("empty");
  const author = document.getElementById("author");
  const likes = document.getElementById("likes");

  let playlist = []; // this cycle's pictures, newest first, loaded page by page
  let position = -1; // the playlist's picture on screen (or the last one shown)
  let nextCursor = null; // where the album's next page starts; null at its end
  let loading = null; // the page request under way
  const fresh = []; // arrivals and pictures let in by moderation: shown next, in their order
  const known = new Set(); // every picture id the wall has met since it opened
  const handled = new Set(); // moderation journal entries already acted on
  const gone = new Set(); // pictures that left the album since the wall opened
  let current = null;
  let journal = 0;
  let etag = null;
  let paused = false;
  let timer = null;
  let shownToken = 0;

  function feed(params) {
    const url = new URL(feedUrl, window.location.href);
    Object.keys(params).forEach(function (name) { url.searchParams.set(name, params[name]); });
    return url.toString();
  }

  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.json();
    });
  }

  function display(picture) {
    current = picture;
    const token = ++shownToken;
    const img = new Image();
    img.onload = function () {
      if (token !== shownToken) return; // another picture was asked for meanwhile
      // Never more than twice the picture's own size: small photos stay sharp enough.
      slide.style.maxWidth = 2 * img.naturalWidth + "px";
      slide.style.maxHeight = 2 * img.naturalHeight + "px";
      slide.src = picture.url;
      slide.alt = picture.alt;
      slide.dataset.pictureId = String(picture.id);
      slide.hidden = false;
      empty.hidden = true;
      author.textContent = (picture.author_name ? picture.author_name + " " : "") + "@" + picture.author_handle;
      likes.textContent = "\u2665 " + picture.likes;
      likes.title = picture.likes + (picture.likes === 1 ? " like" : " likes");
    };
    img.src = picture.url;
  }

  function showEmpty() {
    current = null;
    shownToken++;
    slide.hidden = true;
    delete slide.dataset.pictureId;
    empty.hidden = false;
    author.textContent = "";
    likes.textContent = "";
  }

  function loadPage(cursor) {
    if (loading) return loading;
    const url = cursor ? feed({ before: cursor }) : feed({});
    loading = getJson(url)
      .then(function (data) {
        if (!cursor) { playlist = []; position = -1; }
        if (data.journal !== undefined && !journal) journal = data.journal;
        data.pictures.forEach(function (picture) { known.add(picture.id); gone.delete(picture.id); });
        // Keep memory flat in a long album: forget what was shown long ago.
        if (position > 100) { playlist.splice(0, position - 50); position = 50; }
        playlist = playlist.concat(data.pictures);
        nextCursor = data.next;
      })
      .finally(function () { loading = null; });
    return loading;
  }

  // step 1: the next picture (an arrival first); step -1: the one before on the playlist.
  function advance(step) {
    if (step > 0 && fresh.length) { display(fresh.shift()); return; }
    for (let i = position + step; i >= 0; i += step) {
      if (i >= playlist.length) {
        if (nextCursor) { loadPage(nextCursor).then(function () { advance(step); }, schedule); return; }
        // The end of the album: start again from the newest.
        loadPage(null).then(function () { if (playlist.length) advance(1); else if (!fresh.length) showEmpty(); }, schedule);
        return;
      }
      if (!gone.has(playlist[i].id)) {
        position = i;
        display(playlist[i]);
        if (nextCursor && playlist.length - position < 5) loadPage(nextCursor).catch(function () {});
        return;
      }
    }
  }

  function schedule() {
    clearInterval(timer);
    if (!paused) timer = setInterval(function () { advance(1); }, interval);
  }

  // Which of the pictures the wall holds are still in the album; the others leave now.
  function checkHeld() {
    const held = [];
    if (current) held.push(current.id);
    playlist.slice(Math.max(position + 1, 0)).forEach(function (p) { held.push(p.id); });
    fresh.forEach(function (p) { held.push(p.id); });
    const ids = Array.from(new Set(held)).slice(0, 200);
    if (!ids.length) return Promise.resolve();
    return getJson(feed({ visible: ids.join(",") })).then(function (data) {
      const visible = new Set(data.visible);
      ids.forEach(function (id) { if (!visible.has(id)) gone.add(id); });
      for (let i = fresh.length - 1; i >= 0; i--) if (gone.has(fresh[i].id)) fresh.splice(i, 1);
      if (current && gone.has(current.id)) {
        if (fresh.length || playlist.some(function (p) { return !gone.has(p.id); }) || nextCursor) { advance(1); schedule(); }
        else showEmpty();
      }
    });
  }

  function poll() {
    const headers = { Accept: "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    // no-store: the wall does its own revalidation, so a 304 reaches it as a 304.
    return fetch(feed({ since: journal }), { headers: headers, cache: "no-store" })
      .then(function (response) {
        body.dataset.polls = String(Number(body.dataset.polls || 0) + 1);
        if (response.status === 304 || !response.ok) return null;
        etag = response.headers.get("ETag");
        return response.json();
      })
      .then(function (data) {
        if (!data) return null;
        const before = fresh.length;
        data.pictures.slice().reverse().forEach(function (picture) {
          if (known.has(picture.id)) return;
          known.add(picture.id);
          fresh.push(picture);
        });
        (data.joined || []).forEach(function (picture) {
          if (handled.has(picture.joined)) return;
          handled.add(picture.joined);
          known.add(picture.id);
          gone.delete(picture.id);
          if ((!current || current.id !== picture.id) && !fresh.some(function (p) { return p.id === picture.id; })) fresh.push(picture);
        });
        journal = Math.max(journal, data.journal || 0);
        return checkHeld().then(function () {
          // The first newcomer goes on screen now; the others follow at the usual pace.
          if (!before && fresh.length && !paused) { advance(1); schedule(); }
        });
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ })
      .finally(function () { window.setTimeout(poll, pollEvery); });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "ArrowRight") { advance(1); schedule(); }
    else if (event.key === "ArrowLeft") { advance(-1); schedule(); }
    else if (event.key === " ") { paused = !paused; body.classList.toggle("paused", paused); schedule(); event.preventDefault(); }
    else if (event.key === "f" || event.key === "F") {
      if (document.fullscreenElement) document.exitFullscreen();
      else if (document.documentElement.requestFullscreen) document.documentElement.requestFullscreen();
    }
  });

  // Touch: a swipe left or right, or a tap on the left third (back) or elsewhere (next).
  let touchStart = null;
  stage.addEventListener("pointerdown", function (event) { touchStart = { x: event.clientX, y: event.clientY }; });
  stage.addEventListener("pointerup", function (event) {
    if (!touchStart) return;
    const dx = event.clientX - touchStart.x;
    const dy = event.clientY - touchStart.y;
    touchStart = null;
    if (Math.abs(dx) > 40 && Math.abs(dx) > Math.abs(dy)) advance(dx < 0 ? 1 : -1);
    else if (Math.abs(dx) < 10 && Math.abs(dy) < 10) advance(event.clientX < stage.clientWidth / 3 ? -1 : 1);
    else return;
    schedule();
  });

  loadPage(null)
    .then(function () { if (playlist.length) advance(1); })
    .catch(function () { /* the first poll tries again */ })
    .finally(function () { schedule(); window.setTimeout(poll, pollEvery); });
})();
