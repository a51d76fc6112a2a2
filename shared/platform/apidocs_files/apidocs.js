// Starts Swagger UI on every service's /docs page (shared.platform.apidocs), from this file
// rather than an inline script: the page's one configuration is here, and the page has no
// inline script at all. The OpenAPI document's address is the <main> element's
// data-openapi-url (a relative reference, so the page also works behind the proxy).
//
// The rest changes Swagger UI's rendering where it falls short of WCAG 2.2 AA as axe-core checks
// it (tests/browser/test_api_docs.py): the plugin changes what Swagger UI's components render,
// and `nameAndReach` adds the names and the keyboard access that Swagger UI's elements lack.
// Every operation stays shown and works as before.
(function () {
  "use strict";

  var root = document.getElementById("swagger-ui");

  // Swagger UI puts each operation's path, as a deep link, inside the button that opens the
  // operation: a link inside a button (WCAG 4.1.2, axe-core's nested-interactive), which a
  // keyboard reaches twice and a screen reader cannot name. The path is shown as text instead.
  // Deep linking itself stays on: opening an operation puts it in the address, and an address
  // with an operation opens it.
  function pathAsText(Original, system) {
    return function (props) {
      var operationProps = props.operationProps.set("isDeepLinkingEnabled", false);
      return system.React.createElement(
        Original,
        Object.assign({}, props, { operationProps: operationProps })
      );
    };
  }

  // Swagger UI's title is an <h1>, and both the authorization dialog's title and each group of
  // operations (a tag) are an <h3>: a level is skipped (axe-core's heading-order). An <h2>
  // before each, read by screen readers and hidden on screen, closes the gap.
  function withHeading(text) {
    return function (Original, system) {
      return function (props) {
        var h = system.React.createElement;
        return h(
          system.React.Fragment,
          null,
          h("h2", { className: "weerbaar-visually-hidden" }, text),
          h(Original, props)
        );
      };
    };
  }

  // Code (examples, responses, the curl command) is coloured by Swagger UI's "tomorrow-night"
  // theme, whose colours have at least 4.5:1 on its background but one: #cc6666 (4.46:1), for
  // tags, names and variables. That one becomes #d07070 (4.9:1). Swagger UI's default theme,
  // "agate", has numbers at 3.9:1.
  var CODE_THEME = "tomorrow-night";
  var RED = { color: "#d07070" };
  var THEME_CHANGES = {
    "hljs-variable": RED,
    "hljs-template-variable": RED,
    "hljs-tag": RED,
    "hljs-name": RED,
    "hljs-selector-id": RED,
    "hljs-selector-class": RED,
    "hljs-regexp": RED,
    "hljs-deletion": RED,
  };

  function label(element, text) {
    if (!element.hasAttribute("aria-label")) {
      element.setAttribute("aria-label", text);
    }
  }

  // What Swagger UI renders without a name or out of the keyboard's reach, and no option or
  // component of its own changes: names (WCAG 4.1.2) for its icon buttons and its form fields,
  // and keyboard access (2.1.1) to its scrolling code blocks. These are attributes React does not
  // manage, so they stay until Swagger UI replaces the element, and then are added again.
  function nameAndReach(container) {
    container.querySelectorAll(".close-modal").forEach(function (button) {
      label(button, "Close");
    });
    container.querySelectorAll(".copy-to-clipboard button").forEach(function (button) {
      label(button, "Copy to clipboard");
    });
    // Each operation's parameters: a field is named by its parameter, as its row shows it.
    container.querySelectorAll("tr[data-param-name]").forEach(function (row) {
      var name = row.getAttribute("data-param-name");
      var where = row.getAttribute("data-param-in");
      // Swagger UI gives a text field a placeholder and, once it is wrong, a title with the
      // error; without a label the title (the error) would be its name.
      row.querySelectorAll("select, textarea, input").forEach(function (field) {
        if (field.labels === null || field.labels.length === 0) {
          label(field, where ? name + " (" + where + ")" : name);
        }
      });
    });
    container.querySelectorAll("textarea.body-param__text").forEach(function (field) {
      label(field, "Request body");
    });
    // Each operation's table of responses is a region (Swagger UI's role): named by its
    // operation, and by its tag since an operation is shown under each of its tags, so the
    // regions can be told apart (axe-core's landmark-unique).
    container.querySelectorAll("table.responses-table[role=region]").forEach(function (table) {
      var operation = table.closest(".opblock");
      var tag = table.closest(".opblock-tag-section");
      var method = operation && operation.querySelector(".opblock-summary-method");
      var path = operation && operation.querySelector(".opblock-summary-path");
      var heading = tag && tag.querySelector(".opblock-tag");
      if (method && path && heading) {
        label(
          table,
          "Responses of " + method.textContent + " " + path.dataset.path +
            " (" + heading.dataset.tag + ")"
        );
      }
    });
    // The authorization dialog says "Authorized" in an <h6> under the scheme's <h4>: a level
    // skipped (heading-order). It is read as the level below the scheme's.
    container.querySelectorAll(".auth-container h4 ~ h6").forEach(function (heading) {
      heading.setAttribute("aria-level", "5");
    });
    // A code block that scrolls must be reachable with the keyboard to be read to its end.
    container.querySelectorAll("pre.microlight").forEach(function (code) {
      if (!code.hasAttribute("tabindex")) {
        code.tabIndex = 0;
      }
    });
  }

  // Swagger UI renders (and renders again) at any time: the additions follow every change.
  new MutationObserver(function () {
    nameAndReach(root);
  }).observe(root, { childList: true, subtree: true });

  window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    syntaxHighlight: { activated: true, theme: CODE_THEME },
    presets: [window.SwaggerUIBundle.presets.apis],
    plugins: [
      function () {
        var styles = {};
        styles[CODE_THEME] = THEME_CHANGES;
        return {
          // Merged into Swagger UI's own themes (a plugin's additions are merged, not replaced).
          rootInjects: { syntaxHighlighting: { styles: styles } },
          wrapComponents: {
            OperationSummaryPath: pathAsText,
            AuthorizeBtnContainer: withHeading("Authorization"),
            operations: withHeading("Operations"),
          },
        };
      },
    ],
  });
})();
