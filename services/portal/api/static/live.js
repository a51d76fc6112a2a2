// Live pages: a page whose <main> has data-live follows that address (server-sent events). On
// "gewijzigd" it fetches itself again and replaces the content of <main>, keeping focus and
// scroll position, and says so politely (the status region in the header). A form someone is
// filling in is never replaced: the page then only says that it changed. Without JavaScript
// (or EventSource) nothing changes: the page is as it was loaded.
(function () {
  "use strict";
  var main = document.getElementById("inhoud");
  var melder = document.getElementById("live-melding");
  if (!main || !melder || !main.dataset.live || !window.EventSource || !window.fetch) return;

  function meld(tekst) {
    melder.textContent = "";
    window.setTimeout(function () { melder.textContent = tekst; }, 50);
  }

  // Whether someone is working in a form on the page (a changed field, or one in focus).
  function bezigMetFormulier() {
    var actief = document.activeElement;
    if (actief && main.contains(actief) && /^(INPUT|TEXTAREA|SELECT)$/.test(actief.tagName)) return true;
    var velden = main.querySelectorAll("input, textarea, select");
    for (var i = 0; i < velden.length; i++) {
      var veld = velden[i];
      if (veld.type === "hidden" || veld.type === "submit") continue;
      if (veld.type === "checkbox" || veld.type === "radio") {
        if (veld.checked !== veld.defaultChecked) return true;
      } else if (veld.tagName === "SELECT") {
        // Without a selected attribute a list starts at its first option.
        var standaard = veld.multiple ? -1 : 0;
        for (var j = 0; j < veld.options.length; j++) {
          if (veld.options[j].defaultSelected) { standaard = j; break; }
        }
        if (veld.multiple) {
          for (var k = 0; k < veld.options.length; k++) {
            if (veld.options[k].selected !== veld.options[k].defaultSelected) return true;
          }
        } else if (veld.selectedIndex !== standaard) {
          return true;
        }
      } else if (veld.value !== veld.defaultValue) {
        return true;
      }
    }
    return false;
  }

  var bezig = false;
  var nogEens = false;

  function werkBij() {
    if (bezig) { nogEens = true; return; }
    if (bezigMetFormulier()) {
      meld("Deze pagina is gewijzigd. Laad de pagina opnieuw om de wijzigingen te zien.");
      return;
    }
    bezig = true;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (antwoord) { return antwoord.ok ? antwoord.text() : null; })
      .then(function (html) {
        if (html === null || bezigMetFormulier()) return;
        var nieuw = new DOMParser().parseFromString(html, "text/html").getElementById("inhoud");
        if (!nieuw) return;
        var focusId = document.activeElement && main.contains(document.activeElement) ? document.activeElement.id : "";
        var x = window.scrollX;
        var y = window.scrollY;
        // The one-time note of the person's own last step ("Het contact is vastgelegd.") was
        // shown once and is not in the page fetched again: it stays until they move on.
        var notitie = document.getElementById("melding");
        if (notitie && !nieuw.querySelector("#melding")) {
          var kop = nieuw.querySelector("h1");
          if (kop) kop.after(notitie); else nieuw.prepend(notitie);
        }
        main.replaceChildren.apply(main, Array.prototype.slice.call(nieuw.childNodes).map(function (knoop) {
          return document.importNode(knoop, true);
        }));
        if (window.htmx) window.htmx.process(main);
        var focus = focusId ? document.getElementById(focusId) : null;
        if (focus) focus.focus({ preventScroll: true });
        window.scrollTo(x, y);
        meld("De pagina is bijgewerkt.");
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () {
        bezig = false;
        if (nogEens) { nogEens = false; werkBij(); }
      });
  }

  var bron = new EventSource(main.dataset.live);
  bron.addEventListener("gewijzigd", werkBij);
  // The session ended, or the dossier may no longer be seen: stop (no reconnecting).
  bron.addEventListener("einde", function () { bron.close(); });
})();
