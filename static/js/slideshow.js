// The live slideshow: shows the album's pictures one after another, full screen,
// and polls the album's JSON feed for pictures added by later fetches.
(function () {
  "use strict";
  const body = document.body;
  const feedUrl = body.dataset.feedUrl;
  const interval = Number(body.dataset.interval || 8) * 1000;
  const poll = Number(body.dataset.poll || 30) * 1000;
  const slide = document.getElementById("slide");
  const empty = document.getElementById("empty");
  const author = document.getElementById("author");
  const likes = document.getElementById("likes");

  let pictures = []; // oldest first
  let position = -1;
  let newestId = 0;
  let paused = false;
  let timer = null;
  const fresh = []; // pictures that arrived since the page loaded: shown next

  function show(picture) {
    const img = new Image();
    img.onload = function () {
      slide.src = picture.url;
      slide.alt = picture.alt;
      slide.dataset.pictureId = picture.id;
      slide.hidden = false;
      empty.hidden = true;
      author.textContent = picture.author_name + " (@" + picture.author_handle + ")";
      likes.textContent = "\u2665 " + picture.likes;
    };
    img.src = picture.url;
  }

  function next(step) {
    if (fresh.length && step > 0) {
      const picture = fresh.shift();
      position = pictures.indexOf(picture);
      show(picture);
      return;
    }
    if (!pictures.length) return;
    position = (position + step + pictures.length) % pictures.length;
    show(pictures[position]);
  }

  function schedule() {
    clearInterval(timer);
    if (!paused) timer = setInterval(function () { next(1); }, interval);
  }

  function load(initial) {
    const url = feedUrl + (feedUrl.indexOf("?") === -1 ? "?" : "&") + "after=" + newestId;
    return fetch(url, { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { pictures: [] }; })
      .then(function (data) {
        const added = data.pictures.slice().reverse(); // the feed is newest first
        added.forEach(function (picture) {
          newestId = Math.max(newestId, picture.id);
          pictures.push(picture);
          if (!initial) fresh.push(picture);
        });
        if (initial && pictures.length) { position = pictures.length - 2; next(1); }
        else if (!initial && added.length && slide.hidden) next(1);
      })
      .catch(function () { /* offline for a moment: try again at the next poll */ });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "ArrowRight") { next(1); schedule(); }
    else if (event.key === "ArrowLeft") { next(-1); schedule(); }
    else if (event.key === " ") { paused = !paused; body.classList.toggle("paused", paused); schedule(); event.preventDefault(); }
    else if (event.key === "f" || event.key === "F") {
      if (document.fullscreenElement) document.exitFullscreen();
      else if (document.documentElement.requestFullscreen) document.documentElement.requestFullscreen();
    }
  });

  load(true).then(schedule);
  setInterval(function () { load(false); }, poll);
})();
