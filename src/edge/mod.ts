/**
 * Edge workers: the protocol by which remote machines lend their cores to a
 * WorkerStrategy job of the HTTP service. The worker side is
 * {@linkcode runRemoteWorker}; the server side drives a job's
 * `RemoteWorkers` over a WebSocket ({@linkcode SocketSession}) or
 * request/response ({@linkcode HttpSessions}); frames and messages are
 * documented in `frames.ts` and `messages.ts`.
 *
 * @module
 */
export {
  RemoteWorkerError,
  type RemoteWorkerEvent,
  type RemoteWorkerOptions,
  type RemoteWorkerResult,
  runRemoteWorker,
} from "./remote_worker.ts";
export { type SocketLike, SocketSession } from "./serve_socket.ts";
export { HttpSessions, type StepAnswer } from "./http_sessions.ts";
export {
  decodeFrame,
  EDGE_PROTOCOL,
  encodeFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  FRAME_KINDS,
  frameBytes,
  FrameError,
  type FrameKind,
  MAX_FRAME_SECTIONS,
} from "./frames.ts";
export {
  MessageError,
  parseServerMessage,
  parseWorkerMessage,
  type ServerMessage,
  type WorkerMessage,
} from "./messages.ts";
