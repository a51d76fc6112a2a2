// Starts Swagger UI on every service's /docs page (shared.platform.apidocs), from this file
// rather than an inline script: the page's one configuration is here, and the page has no
// inline script at all. The OpenAPI document's address is the <main> element's
// data-openapi-url (a relative reference, so the page also works behind the proxy).
//
// The plugin below changes two things in Swagger UI's rendering, for WCAG 2.2 AA as axe-core
// checks it; every operation stays shown and works as before.
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

  // Swagger UI's title is an <h1> and each group of operations (a tag) an <h3>: one level is
  // skipped (axe-core's heading-order). An <h2> for the operations, read by screen readers and
  // hidden on screen, closes the gap.
  function withOperationsHeading(Original, system) {
    return function (props) {
      var h = system.React.createElement;
      return h(
        system.React.Fragment,
        null,
        h("h2", { className: "weerbaar-visually-hidden" }, "Operations"),
        h(Original, props)
      );
    };
  }

  window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    plugins: [
      function () {
        return {
          wrapComponents: {
            OperationSummaryPath: pathAsText,
            operations: withOperationsHeading,
          },
        };
      },
    ],
  });
})();
