// Album pages: the PhotoSwipe lightbox and infinite scroll. Without JavaScript
// the thumbnails link to the large pictures and the pager links still work.
import PhotoSwipeLightbox from "../vendor/photoswipe/photoswipe-lightbox.esm.min.js";

const gallery = document.getElementById("gallery");

if (gallery) {
  const lightbox = new PhotoSwipeLightbox({
    gallery: "#gallery",
    children: "a.pswp-item",
    pswpModule: () => import("../vendor/photoswipe/photoswipe.esm.min.js"),
    bgOpacity: 0.95,
  });
  lightbox.on("uiRegister", () => {
    lightbox.pswp.ui.registerElement({
      name: "caption",
      order: 9,
      isButton: false,
      appendTo: "root",
      onInit: (element, pswp) => {
        pswp.on("change", () => {
          const source = pswp.currSlide.data.element;
          const caption = source && source.closest(".card").querySelector(".pswp-caption-content");
          element.innerHTML = caption ? caption.innerHTML : "";
        });
      },
    });
  });
  // A hook for people and tests: the lightbox is ready for keys once its opening animation ends.
  lightbox.on("openingAnimationEnd", () => { document.documentElement.dataset.lightbox = "open"; });
  lightbox.on("destroy", () => { delete document.documentElement.dataset.lightbox; });
  lightbox.init();

  // Infinite scroll: fetch the next page's cards when the pager comes into view.
  const fragmentUrl = gallery.dataset.fragmentUrl;
  const pager = document.querySelector(".pager");
  if (fragmentUrl && pager && "IntersectionObserver" in window) {
    let loading = false;
    const observer = new IntersectionObserver(async (entries) => {
      const nextLink = pager.querySelector("a.next-page");
      if (!entries.some((entry) => entry.isIntersecting) || loading || !nextLink) return;
      loading = true;
      const page = new URL(nextLink.href).searchParams.get("page");
      const response = await fetch(`${fragmentUrl}&page=${page}`);
      if (response.ok) {
        gallery.insertAdjacentHTML("beforeend", await response.text());
        const next = Number(page) + 1;
        const last = Number(pager.dataset.pages || 0);
        nextLink.href = nextLink.href.replace(/page=\d+/, `page=${next}`);
        if (last && next > last) observer.disconnect(), pager.remove();
      }
      loading = false;
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
