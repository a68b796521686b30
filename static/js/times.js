// Times the page was rendered with ("3 minutes ago") stay true in a cached page and as the page
// stays open: each <time datetime> marked data-relative is rewritten from its datetime.
const units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
const format = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

export function relativeTimes(root = document) {
  const now = Date.now();
  for (const time of root.querySelectorAll("time[data-relative]")) {
    const seconds = Math.round((new Date(time.dateTime).getTime() - now) / 1000);
    if (Number.isNaN(seconds)) continue;
    const [unit, size] = units.find(([, s]) => Math.abs(seconds) >= s) || ["second", 1];
    time.textContent = Math.abs(seconds) < 45 ? (seconds <= 0 ? "just now" : "in a moment") : format.format(Math.round(seconds / size), unit);
  }
}

relativeTimes();
window.setInterval(relativeTimes, 30000);
