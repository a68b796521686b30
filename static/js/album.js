// Album pages: the PhotoSwipe lightbox over the whole album, and infinite scroll. Without
// JavaScript the thumbnails open each picture's page and the pager links still work.
import PhotoSwipeLightbox from "../vendor/photoswipe/photoswipe-lightbox.esm.min.js";
import { relativeTimes } from "./times.js";

const gallery = document.getElementById("gallery");

if (gallery) {
  const fragmentUrl = gallery.dataset.fragmentUrl;
  const pager = document.querySelector(".pager");
  const nextLink = () => pager && pager.querySelector("a.next-page");
  // How many pictures the list has in all (the pages not loaded yet included).
  const total = Number(gallery.dataset.total || 0);
  const cards = () => gallery.querySelectorAll("a.pswp-item");
  let loading = null;

  // The next page's cards, appended to the grid; resolves to false at the end of the album.
  function loadMore() {
    if (loading) return loading;
    const link = nextLink();
    if (!fragmentUrl || !link) return Promise.resolve(false);
    const page = Number(new URL(link.href).searchParams.get("page"));
    loading = fetch(`${fragmentUrl}&page=${page}`)
      .then(async (response) => {
        if (!response.ok) return false;
        gallery.insertAdjacentHTML("beforeend", await response.text());
        const last = Number(pager.dataset.pages || 0);
        link.href = link.href.replace(/page=\d+/, `page=${page + 1}`);
        if (last && page + 1 > last) pager.remove();
        return true;
      })
      .finally(() => { loading = null; });
    return loading;
  }

  const lightbox = new PhotoSwipeLightbox({
    gallery: "#gallery",
    children: "a.pswp-item",
    pswpModule: () => import("../vendor/photoswipe/photoswipe.esm.min.js"),
    bgOpacity: 0.95,
    loop: false, // the end of the album is the end, not the first picture again
  });
  // The counter and the arrows know the whole album, not only the cards loaded so far.
  lightbox.addFilter("numItems", (numItems) => Math.max(numItems, total));
  lightbox.addFilter("itemData", (itemData, index) => {
    if (index < cards().length) return itemData;
    // A picture on a page not loaded yet: a placeholder now, the picture once its page is here.
    loadMore().then((more) => {
      const pswp = lightbox.pswp;
      if (!more || !pswp) return;
      pswp.options.dataSource.items = Array.from(cards());
      for (let i = index - 1; i <= index + 1; i++) if (i >= 0 && i < pswp.getNumItems()) pswp.refreshSlideContent(i);
    });
    return { html: '<div class="pswp-loading" role="status">Loading more pictures…</div>' };
  });
  lightbox.on("afterInit", () => {
    const label = gallery.dataset.label || "Pictures";
    lightbox.pswp.element.setAttribute("aria-label", `${label}: picture viewer`);
  });
  lightbox.on("uiRegister", () => {
    lightbox.pswp.ui.registerElement({
      name: "caption",
      order: 9,
      isButton: false,
      appendTo: "root",
      onInit: (element, pswp) => {
        const update = () => {
          const source = pswp.currSlide && pswp.currSlide.data.element;
          const caption = source && source.closest(".card").querySelector(".pswp-caption-content");
          element.innerHTML = caption ? caption.innerHTML : "";
          if (caption) relativeTimes(element);
        };
        pswp.on("change", update);
        pswp.on("contentActivate", update);
      },
    });
  });
  // A hook for people and tests: the lightbox is ready for keys once its opening animation ends.
  lightbox.on("openingAnimationEnd", () => { document.documentElement.dataset.lightbox = "open"; });
  lightbox.on("destroy", () => { delete document.documentElement.dataset.lightbox; });
  lightbox.init();

  // Infinite scroll: fetch the next page's cards when the pager comes into view.
  if (fragmentUrl && pager && "IntersectionObserver" in window) {
    const observer = new IntersectionObserver(async (entries) => {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      if (!(await loadMore()) && !document.body.contains(pager)) observer.disconnect();
    }, { rootMargin: "600px" });
    observer.observe(pager);
  }
}

for (const button of document.querySelectorAll("button.copy")) {
  button.addEventListener("click", async () => {
    const input = document.querySelector(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = "Copied";
    } catch {
      input.select();
    }
  });
}
