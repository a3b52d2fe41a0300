// The Kubernetes manifest's wiring matches what clusterFromEnv() reads: every
// pod of the Indexed Job becomes the node of its completion index, and all of
// them find rank 0 through the headless Service.
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { clusterFromEnv } from "../../mod.ts";

const MANIFEST = new URL("../../deploy/kubernetes/dtrain-train.yaml", import.meta.url);

// deno-lint-ignore no-explicit-any
type Doc = any;

Deno.test("deploy/kubernetes: each Indexed Job pod is the node of its index and reaches rank 0", async () => {
  const docs: Doc[] = parseAllDocuments(await Deno.readTextFile(MANIFEST)).map((d) => d.toJS());
  const service = docs.find((d) => d.kind === "Service");
  const job = docs.find((d) => d.kind === "Job");
  assert.ok(service && job, "a Service and a Job");
  assert.equal(service.spec.clusterIP, "None", "the Service is headless");
  const pod = job.spec.template;
  assert.equal(pod.spec.subdomain, service.metadata.name, "pods get DNS names under the Service");
  for (const [k, v] of Object.entries(service.spec.selector)) {
    assert.equal(pod.metadata.labels[k], v);
  }
  assert.equal(job.spec.completionMode, "Indexed");
  const container = pod.spec.containers[0];
  const env: Record<string, string> = {};
  for (const e of container.env) env[e.name] = e.value ?? "from-a-secret";
  assert.ok(container.env.find((e: Doc) => e.name === "DTRAIN_TOKEN").valueFrom.secretKeyRef);
  const nodes = Number(env.DTRAIN_NNODES);
  assert.equal(job.spec.completions, nodes, "one pod per node");
  assert.equal(job.spec.parallelism, nodes, "all nodes run at once");
  const [host, port] = env.DTRAIN_COORDINATOR!.split(":");
  assert.equal(host, `${job.metadata.name}-0.${service.metadata.name}`, "rank 0's pod name");
  assert.equal(Number(port), service.spec.ports[0].port);
  assert.ok(container.ports.some((p: Doc) => p.containerPort === Number(port)));
  for (let index = 0; index < nodes; index++) {
    // Kubernetes sets JOB_COMPLETION_INDEX in every pod of an Indexed Job.
    const spec = clusterFromEnv({ ...env, JOB_COMPLETION_INDEX: String(index) });
    assert.deepEqual(spec, {
      nodes,
      rank: index,
      coordinator: env.DTRAIN_COORDINATOR,
      token: "from-a-secret",
    });
  }
  assert.deepEqual(container.command.slice(0, 3), ["deno", "task", "dtrain"]);
});
