// Tell the accountant when a request failed, instead of leaving a screen that looks saved.
document.addEventListener("htmx:responseError", showRequestError);
document.addEventListener("htmx:sendError", showRequestError);

function showRequestError() {
  const toast = document.getElementById("request-error");
  if (!toast) return;
  toast.hidden = false;
  clearTimeout(showRequestError.timer);
  showRequestError.timer = setTimeout(() => { toast.hidden = true; }, 8000);
}
