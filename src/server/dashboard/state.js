// The dashboard's one shared state: the token, what the server reported and
// listed, and what the page shows. Each section writes only its own fields
// (noted below); everyone may read.

/** sessionStorage key of the bearer token. */
export const TOKEN_KEY = "dtrain.token";
/** Job states a job never leaves. */
export const TERMINAL = ["succeeded", "failed", "cancelled", "interrupted"];

/** The page's state. */
export const state = {
  /** token.js: the bearer token ("" for none). */
  token: sessionStorage.getItem(TOKEN_KEY) ?? "",
  /** job_form.js: GET /v1/options, the values a job may name. */
  options: null,
  /** backends.js: GET /v1/backends. */
  report: null,
  /** jobs.js: the latest job list. */
  jobs: [],
  /** models.js: the registry's models. */
  models: [],
  /** jobs.js: the id of the job the panel shows. */
  selected: null,
  /** jobs.js: the JobView of the selected job. */
  view: null,
  /** jobs.js: the job list's polling timer. */
  pollTimer: undefined,
  /** predict.js: the model the drawing is sent to. */
  predictModel: "",
  /** jobs.js: model ids seen in job records (a new one means the registry grew). */
  seenModelIds: new Set(),
  /** models.js: whether the models were loaded once. */
  modelsLoaded: false,
};
