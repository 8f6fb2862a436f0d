// Starts `specc lsp` for .cnn files; everything else (diagnostics, hover, inlay hints, completion,
// definitions, outline, formatting) is the language server's.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("specc").get("command", ["specc", "lsp"]);
  client = new LanguageClient(
    "specc",
    "specc language server",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "specc" }, { scheme: "untitled", language: "specc" }] },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
