// Decide without reloading: each form is posted with fetch (the CSRF token from the form);
// without JavaScript the forms post and the page comes back.
(() => {
  const grid = document.getElementById("review-grid");
  if (!grid) return;
  const cards = () => Array.from(grid.children);
  const current = () => grid.querySelector("li.current") || cards()[0];
  const select = (card) => {
    if (!card) return;
    grid.querySelectorAll("li.current").forEach((li) => li.classList.remove("current"));
    card.classList.add("current");
    card.scrollIntoView({ block: "nearest" });
  };
  const nextOpen = (card) => {
    const all = cards();
    const after = all.slice(all.indexOf(card) + 1).concat(all.slice(0, all.indexOf(card)));
    return after.find((li) => !li.classList.contains("decided"));
  };
  grid.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const button = event.submitter;
    const card = form.closest("li");
    const body = new FormData(form);
    body.set("decision", button ? button.value : "approve");
    form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": body.get("csrfmiddlewaretoken") },
      });
      if (!response.ok) throw new Error(`${response.status}`);
      const data = await response.json();
      card.classList.add("decided");
      const outcome = document.createElement("p");
      outcome.className = "outcome";
      outcome.textContent = data.status === "visible" ? "Approved" : data.status === "hidden" ? "Hidden" : data.status;
      form.replaceWith(outcome);
      document.getElementById("pending-count").textContent = data.pending;
      if (card.classList.contains("current")) select(nextOpen(card));
    } catch (error) {
      form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      alert(`Could not save the decision (${error.message}). Try again.`);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest("input, textarea, select")) return;
    const card = current();
    const all = cards();
    if (event.key === "j") select(all[Math.min(all.indexOf(card) + 1, all.length - 1)]);
    else if (event.key === "k") select(all[Math.max(all.indexOf(card) - 1, 0)]);
    else if (event.key === "a" || event.key === "h") {
      const button = card && card.querySelector(`button[value="${event.key === "a" ? "approve" : "hide"}"]`);
      if (button) button.form.requestSubmit(button);
    } else return;
    event.preventDefault();
  });
  grid.addEventListener("click", (event) => {
    const card = event.target.closest("li");
    if (card && !event.target.closest("a, button")) select(card);
  });
})();
