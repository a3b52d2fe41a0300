// Throwaway TLS material for the cluster tests: a CA and a leaf for
// 127.0.0.1, made with the openssl command line when it is installed.
import assert from "node:assert/strict";

/** Whether `openssl` runs here (the TLS tests skip without it). */
export const HAS_OPENSSL: boolean = (() => {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

/** Certificate, key and CA files for every node of a loopback cluster. */
export interface TestTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/**
 * Writes a throwaway CA and a leaf signed by it for `IP:127.0.0.1` (rustls
 * refuses a CA used as the leaf) into `dir`, valid for a day.
 */
export async function testCertificates(dir: string): Promise<TestTls> {
  const openssl = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(out.success, `openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const day = ["-days", "1"];
  await openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    ...day,
    "-subj",
    "/CN=dtrain-test-ca",
  );
  await openssl("req", ...ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=dtrain-test");
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "subjectAltName=IP:127.0.0.1,DNS:dtrain-test\nbasicConstraints=CA:FALSE\n",
  );
  await openssl(
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "cert.pem",
    ...day,
    "-extfile",
    "ext.cnf",
  );
  return { certFile: `${dir}/cert.pem`, keyFile: `${dir}/key.pem`, caFile: `${dir}/ca.pem` };
}
