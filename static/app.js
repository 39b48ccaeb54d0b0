// A message the page opens with (a failed connection, a refused form) gets the focus, so it
// is read out and the keyboard starts there.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelector("[data-focus-on-load]")?.focus();
});

// Esc closes the tooltip under the pointer or on the focused element; it shows again once
// the pointer or the focus has left it.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const open = [document.activeElement, ...document.querySelectorAll("[data-tip]:hover")];
  for (const element of open) {
    if (element instanceof Element && element.hasAttribute("data-tip")) {
      element.setAttribute("data-tip-closed", "");
    }
  }
});
for (const type of ["mouseout", "focusout"]) {
  document.addEventListener(type, (event) => {
    const element = event.target instanceof Element && event.target.closest("[data-tip-closed]");
    if (element && !element.contains(event.relatedTarget)) element.removeAttribute("data-tip-closed");
  });
}

// Tell the accountant when a request failed, instead of leaving a screen that looks saved.
document.addEventListener("htmx:responseError", showRequestError);
document.addEventListener("htmx:sendError", showRequestError);
// A 403 is an answer, not a failure (base.html's responseHandling): nothing is swapped in,
// and the person is told why.
document.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail.xhr?.status === 403) showRequestError(event);
});

// A 403 says why in its own words (the role it takes, as text/plain: see web/plugins.py);
// any other failure gets the page's general message.
function showRequestError(event) {
  const toast = document.getElementById("request-error");
  if (!toast) return;
  toast.dataset.general ??= toast.textContent;
  const xhr = event?.detail?.xhr;
  const refused = xhr?.status === 403 && (xhr.getResponseHeader("Content-Type") || "").startsWith("text/plain");
  toast.textContent = refused ? xhr.responseText : toast.dataset.general;
  toast.hidden = false;
  clearTimeout(showRequestError.timer);
  showRequestError.timer = setTimeout(() => { toast.hidden = true; }, 8000);
}

// SAF-T upload: each chosen or dropped file is sent as the raw request body (the server
// streams it to disk; a form would be held in memory), one at a time, with a progress bar.
// The server's answer is the file's import row, which follows the import itself (htmx).
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.id !== "saft-files") return;
  uploadSaftFiles(Array.from(input.files || []), input.closest("[data-upload-url]"));
  input.value = "";
});
for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (event) => {
    const zone = event.target instanceof Element && event.target.closest(".dropzone");
    if (!zone) return;
    event.preventDefault();
    zone.classList.add("over");
  });
}
document.addEventListener("dragleave", (event) => {
  const zone = event.target instanceof Element && event.target.closest(".dropzone");
  if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("over");
});
document.addEventListener("drop", (event) => {
  const zone = event.target instanceof Element && event.target.closest(".dropzone");
  if (!zone) return;
  event.preventDefault();
  zone.classList.remove("over");
  uploadSaftFiles(Array.from(event.dataTransfer.files), zone.closest("[data-upload-url]"));
});

async function uploadSaftFiles(files, box) {
  if (!box || files.length === 0) return;
  const list = box.querySelector(".saft-imports");
  box.querySelector("#no-imports")?.remove();
  const rows = files.map((file) => {
    const row = document.createElement("li");
    row.className = "saft-import uploading";
    row.innerHTML = '<div class="import-head"><strong class="file-name"></strong></div>' +
      '<label class="small"><span class="upload-state">Venter på tur …</span>' +
      '<progress max="100" value="0"></progress></label>';
    row.querySelector(".file-name").textContent = file.name;
    list.prepend(row);
    return [file, row];
  });
  for (const [file, row] of rows) await uploadSaftFile(file, row, box);
}

function uploadSaftFile(file, row, box) {
  const state = row.querySelector(".upload-state");
  const bar = row.querySelector("progress");
  const fail = (text) => {
    row.classList.add("error");
    state.textContent = text;
    state.setAttribute("role", "alert");
    bar.remove();
  };
  if (file.size > Number(box.dataset.maxBytes)) {
    fail(box.dataset.tooLarge);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    const url = box.dataset.uploadUrl + "?filnavn=" + encodeURIComponent(file.name);
    request.open("POST", url);
    request.setRequestHeader("Content-Type", "application/xml");
    request.setRequestHeader("HX-Request", "true");
    const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
    state.textContent = "Laster opp … 0 %";
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      bar.value = Math.floor((event.loaded * 100) / event.total);
      state.textContent = bar.value < 100 ? `Laster opp … ${bar.value} %` : "Lastet opp – importerer …";
    });
    request.addEventListener("load", () => {
      const answer = document.createElement("template");
      answer.innerHTML = request.responseText.trim();
      const imported = answer.content.querySelector("li.saft-import");
      if (request.status === 403) {
        fail(`${request.responseText} Ingenting er lagret.`);
        return resolve();
      }
      if (!imported) {
        fail(`Opplastingen feilet (status ${request.status}). Ingenting er lagret. Prøv igjen.`);
        return resolve();
      }
      for (const other of answer.content.querySelectorAll("[hx-swap-oob]")) {
        document.getElementById(other.id)?.replaceWith(other);
      }
      row.replaceWith(imported);
      htmx.process(imported);
      if (request.getResponseHeader("HX-Trigger") === "saft-imported") {
        htmx.trigger(document.body, "saft-imported");
      }
      resolve();
    });
    request.addEventListener("error", () => {
      fail("Opplastingen feilet: fikk ikke kontakt med serveren. Ingenting er lagret. Prøv igjen.");
      resolve();
    });
    request.send(file);
  });
}

// A button with data-copy="<input id>" copies that input's value (a link or key shown once)
// and says so on itself for a moment; where the clipboard is refused, the text is selected.
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element && event.target.closest("button[data-copy]");
  if (!button) return;
  const input = document.getElementById(button.dataset.copy);
  if (!(input instanceof HTMLInputElement)) return;
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    document.execCommand?.("copy");
  }
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.textContent = button.dataset.copied || "Kopiert";
  setTimeout(() => { button.textContent = label; }, 2000);
});
