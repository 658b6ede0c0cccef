// GraphiQL with the explorer plugin, on /graphql itself. The session's CSRF cookie goes with
// every request, so a signed-in browser runs mutations; an API token goes in the headers pane as
// {"Authorization": "Bearer …"}. The query, variables and headers are kept in the address.
(function () {
  "use strict";

  const EXAMPLE_QUERY = `# Bedrock's GraphQL API. Ctrl-Enter runs the query; Ctrl-Space completes.
# The documentation (top left) lists every type and field.
{
  runs(first: 10) {
    edges {
      node {
        number
        status
        pipeline { name }
      }
    }
  }
}
`;

  const parameters = {};
  for (const entry of window.location.search.slice(1).split("&")) {
    const eq = entry.indexOf("=");
    if (eq >= 0) {
      parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(
        entry.slice(eq + 1),
      );
    }
  }

  function updateURL(data) {
    Object.assign(parameters, data);
    const search = Object.keys(parameters)
      .filter((key) => Boolean(parameters[key]))
      .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
      .join("&");
    history.replaceState(null, null, "?" + search);
  }

  const headers = {};
  const csrfToken = Cookies.get("csrftoken");
  if (csrfToken) {
    headers["x-csrftoken"] = csrfToken;
  }
  // Bedrock has no subscriptions: no WebSocket URL.
  const fetcher = GraphiQL.createFetcher({
    url: window.location.href.split("?")[0],
    headers: headers,
  });

  function BedrockGraphiQL() {
    const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
    const [variables, setVariables] = React.useState(parameters.variables);
    const [editorHeaders, setEditorHeaders] = React.useState(parameters.headers);
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      query: query,
      variables: variables,
      headers: editorHeaders,
      onEditQuery: (value) => {
        setQuery(value);
        updateURL({ q: value });
      },
      onEditVariables: (value) => {
        setVariables(value);
        updateURL({ variables: value });
      },
      onEditHeaders: setEditorHeaders,
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      // Headers may hold an API token: never written to the browser's storage.
      shouldPersistHeaders: false,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(BedrockGraphiQL),
  );
})();
