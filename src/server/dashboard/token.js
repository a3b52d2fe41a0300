// The bearer token: the dialog that asks for it, what a 401 does (forget the
// token, stop polling, ask again with the server's reason), and the "Change
// token" link. The token is kept for the tab in sessionStorage.
import { onUnauthorized } from "./api.js";
import { $ } from "./dom.js";
import { setConnection } from "./errors.js";
import { stopPolling } from "./jobs.js";
import { state, TOKEN_KEY } from "./state.js";

/** Opens the token dialog with `message` (an error when `isError`). */
export function askToken(message, isError) {
  const dialog = $("#token-dialog");
  const note = $("#token-message");
  note.textContent = message;
  note.className = isError ? "error" : "";
  $("#token-input").value = "";
  if (!dialog.open) dialog.showModal();
  $("#token-input").focus();
}

/** Handles a 401 to a request sent with token `sent` ("" for none). */
function unauthorized(error, sent) {
  // A late answer to a token that was already replaced says nothing about the new one.
  if (state.token !== "" && state.token !== sent) return;
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  stopPolling();
  state.view?.close();
  setConnection("token needed", false);
  if (sent !== "") {
    askToken(
      `The server refused this token: ${error.message} (HTTP 401 ${error.code}). ` +
        "Check DTRAIN_TOKEN and try again.",
      true,
    );
  } else {
    askToken("This server requires a bearer token: enter the value of its DTRAIN_TOKEN.", false);
  }
}

/** Wires the token dialog; `connect()` runs once a token was entered. */
export function setUpToken(connect) {
  onUnauthorized(unauthorized);

  $("#token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("#token-input").value.trim();
    if (token === "") return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("#token-submit").disabled = true;
    try {
      await connect();
    } finally {
      $("#token-submit").disabled = false;
    }
  });

  // Without a token the page can do nothing: Escape does not close the dialog.
  $("#token-dialog").addEventListener("cancel", (event) => {
    if (state.token === "") event.preventDefault();
  });

  $("#token-change").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    askToken("Enter the server's token (DTRAIN_TOKEN).", false);
  });
}

/** Closes the token dialog (the token works). */
export function closeTokenDialog() {
  const dialog = $("#token-dialog");
  if (dialog.open) dialog.close();
}
