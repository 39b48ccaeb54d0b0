// The print view's button opens the browser's print dialog, where «Lagre som PDF» makes a PDF.
// Hidden until this runs: without JavaScript the browser's own Skriv ut does the same.
for (const button of document.querySelectorAll("[data-print]")) {
  button.hidden = false;
  button.addEventListener("click", () => window.print());
}
