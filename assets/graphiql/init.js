// Starts GraphiQL on the page sunset serves at /graphql. Everything it loads comes from
// this server (no CDN), so it works in an air-gapped network and the page's
// Content-Security-Policy can forbid every other origin and every inline script.
// Paste `{"Authorization": "Bearer <token>"}` into the Headers tab: HTTP requests send
// it as a header, subscriptions in their connection_init.
(function () {
  "use strict";
  var url = window.location.origin + "/graphql";
  var subscriptionUrl =
    (window.location.protocol === "https:" ? "wss://" : "ws://") +
    window.location.host + "/graphql/ws";
  function fetcher(params, options) {
    var headers = (options && options.headers) || {};
    var authorization = headers.Authorization || headers.authorization;
    return GraphiQL.createFetcher({
      url: url,
      subscriptionUrl: subscriptionUrl,
      wsConnectionParams: authorization ? { authorization: authorization } : {},
    })(params, options);
  }
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: "headers",
      defaultHeaders: '{\n  "Authorization": "Bearer <token>"\n}',
    })
  );
})();
