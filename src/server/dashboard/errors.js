// How the dashboard shows trouble: the API's error class, a readable
// description of any error, the error banner and the connection badge.
import { $ } from "./dom.js";

/** An error answer of the API, or a failed request. */
export class ApiError extends Error {
  constructor(request, status, code, message, details) {
    super(message);
    this.name = "ApiError";
    this.request = request;
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Whether `error` is the API's 401 (the token dialog handles those). */
export function isUnauthorized(error) {
  return error instanceof ApiError && error.status === 401;
}

/** A readable, one-paragraph description of an error. */
export function describe(error) {
  if (!(error instanceof ApiError)) return String(error?.message ?? error);
  const where = error.request ? `${error.request} failed` : "Request failed";
  const status = error.status ? `HTTP ${error.status} ${error.code}` : error.code;
  let text = `${where} (${status}): ${error.message}`;
  const issues = error.details?.issues;
  if (Array.isArray(issues) && issues.length > 1) {
    text += "\n" + issues.map((i) => `• ${i.path || "(body)"}: ${i.message}`).join("\n");
  }
  return text;
}

/** Shows `error` in the banner at the top. */
export function showError(error) {
  $("#error-text").textContent = describe(error);
  $("#error").hidden = false;
}

/** Hides the banner. */
export function clearError() {
  $("#error").hidden = true;
  $("#error-text").textContent = "";
}

/** Sets the connection badge. */
export function setConnection(text, ok) {
  const node = $("#connection");
  node.textContent = text;
  node.className = `connection ${ok ? "ok" : "bad"}`;
}

$("#error-close").addEventListener("click", clearError);
