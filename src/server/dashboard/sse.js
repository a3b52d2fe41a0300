// A Server-Sent Events reader over fetch(): EventSource cannot send an
// Authorization header, so the job view reads the stream's body itself.

/**
 * Reads a `text/event-stream` body; calls `onEvents([{ id, event, data }])`
 * with the events of each network read (comments such as pings are skipped).
 */
export async function readEvents(body, onEvents) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    const batch = [];
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: 0, event: "message", data: [] };
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const text = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") event.id = Number(text);
        else if (field === "event") event.event = text;
        else if (field === "data") event.data.push(text);
      }
      if (event.data.length > 0) batch.push({ ...event, data: JSON.parse(event.data.join("\n")) });
    }
    if (batch.length > 0) onEvents(batch);
  }
}
