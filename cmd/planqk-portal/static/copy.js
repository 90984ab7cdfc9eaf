// Copy-to-clipboard for the one-time secret. The page works without this
// script: the secret is in a read-only field that can be selected and
// copied by hand; with it, the Copy button appears.
//
// Shown once means once, also with Back and Forward: when the page is left,
// the secret leaves the document ([data-shown-once]), so that the browser's
// back/forward cache keeps nothing to restore; a page restored anyway is
// loaded again, and the portal answers that the secret was shown already.
"use strict";
var secretRemoved = false;
window.addEventListener("pagehide", function () {
  document.querySelectorAll("[data-shown-once]").forEach(function (el) {
    el.remove();
    secretRemoved = true;
  });
});
window.addEventListener("pageshow", function (event) {
  if (event.persisted && (secretRemoved || document.querySelector("[data-shown-once]"))) {
    window.location.reload();
  }
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.getElementById(button.getAttribute("data-copy-status"));
    if (!field) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function (message) {
        if (status) {
          status.textContent = message;
        }
      };
      var fallback = function () {
        field.focus();
        field.select();
        done(document.execCommand("copy") ? "Copied to the clipboard." : "Select the token and copy it.");
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () {
          done("Copied to the clipboard.");
        }, fallback);
      } else {
        fallback();
      }
    });
  });
});
