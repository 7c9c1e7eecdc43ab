// TLS against the project's broker (`broker.sh up`: TLS streams on localhost:5551 with a test CA
// under $BROKER_STATE_DIR/tls/; `broker.sh mtls up`: a node on 5541 that requires a client
// certificate): send and receive on Node, Bun and Deno, and every refusal as one line.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cli, type Run, run, type Runtime, uniqueStream, withStream } from "./helpers.ts"

const tlsDir = path.join(process.env.BROKER_STATE_DIR ?? "/var/lib/effect-stream-offsets", "tls")
const ca = path.join(tlsDir, "ca.pem")
const uri = (port = 5551, host = "localhost") => `rabbitmq-stream+tls://guest:tls-secret-guest@${host}:${port}/%2f`
// The broker's guest password is "guest": the URI's password is swapped in by the tests below
// only where a connection must succeed; refusals use one that must never be printed either.
const good = (port = 5551, host = "localhost") => uri(port, host).replace("tls-secret-guest", "guest")

const expectRefused = (r: Run, text: string) => {
  expect(r.stderr.trim().split("\n"), r.stderr).toHaveLength(1)
  expect(r.stderr).toContain(text)
  expect(r.stderr).not.toContain("tls-secret-guest")
  expect(r.code).toBe(1)
}

describe("send and receive over TLS with the project's CA", () => {
  for (const runtime of ["node", "bun", "deno"] as const satisfies ReadonlyArray<Runtime>) {
    it(`${runtime}: every message confirmed, then received; publisher and consumer connections use TLS too`, () =>
      withStream(`tls-${runtime}`, async (stream) => {
        const flags = ["--uri", good(), "--ca", ca, "--stream", stream]
        const sent = await cli(runtime, "send", flags)
        expect(sent.stderr).toBe("")
        expect(sent.stdout).toContain("Messages confirmed: true.")
        const received = await cli(runtime, "receive", [...flags, "--name", "tls"])
        expect(received.stderr).toBe("")
        expect(received.stdout).toContain("Done consuming, first offset 0, last offset 99.")
      }))
  }
})

describe("refused over TLS: one line, exit 1, no password, no retrying", () => {
  const foreign = fs.mkdtempSync(path.join(os.tmpdir(), "foreign-ca-"))
  beforeAll(() => {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=a foreign CA",
      "-keyout", path.join(foreign, "key.pem"), "-out", path.join(foreign, "ca.pem")
    ], { stdio: "ignore" })
  })
  afterAll(() => fs.rmSync(foreign, { recursive: true, force: true }))

  it("no CA given: the project's self-made CA is not trusted", async () => {
    for (const runtime of ["node", "bun", "deno"] as const) {
      expectRefused(await cli(runtime, "send", ["--uri", uri()]), "certificate is not trusted")
    }
  })

  it("a foreign CA", async () => {
    expectRefused(await cli("node", "send", ["--uri", uri(), "--ca", path.join(foreign, "ca.pem")]), "certificate is not trusted")
  })

  it("a certificate for another host name (connecting by 127.0.0.1; the certificate names localhost)", async () => {
    for (const runtime of ["node", "bun", "deno"] as const) {
      expectRefused(
        await cli(runtime, "send", ["--uri", uri(5551, "127.0.0.1"), "--ca", ca]),
        "certificate is not for this host name"
      )
    }
  })

  it("a TLS URI pointed at the plain port", async () => {
    expectRefused(await cli("node", "send", ["--uri", uri(5552), "--ca", ca]), "is this the broker's TLS port?")
  })

  it("a plain URI pointed at the TLS port", async () => {
    const r = await cli("node", "send", ["--uri", "rabbitmq-stream://guest:tls-secret-guest@localhost:5551/%2f"])
    expectRefused(r, "rabbitmq-stream+tls://")
  })

  it("--insecure-skip-verify connects without the CA, and says so on every connect", () =>
    withStream("tls-insecure", async (stream) => {
      const r = await cli("node", "send", ["--uri", good(), "--insecure-skip-verify", "--stream", stream])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toContain("warning: TLS certificate verification is OFF")
    }))
})

describe("mutual TLS (a broker that requires a client certificate)", () => {
  const broker = async (command: string) => {
    const result = await run("bash", ["scripts/broker.sh", "mtls", command], {}, 240_000)
    expect(result.code, result.stderr).toBe(0)
  }
  beforeAll(() => broker("up"), 240_000)
  afterAll(() => broker("down"), 240_000)
  const client = ["--cert", path.join(tlsDir, "client.pem"), "--key", path.join(tlsDir, "client-key.pem")]

  // (The stream stays on the mutual-TLS node: the raw test client has no TLS to delete it.)
  it("accepted with the client certificate", async () => {
    const flags = ["--uri", good(5541), "--ca", ca, "--stream", uniqueStream("mtls"), ...client]
    const sent = await cli("node", "send", flags)
    expect(sent.code, sent.stderr).toBe(0)
    const received = await cli("bun", "receive", [...flags, "--name", "mtls"])
    expect(received.stdout).toContain("Consumed 100 messages.")
  })

  it("refused without it, in one line", async () => {
    expectRefused(await cli("node", "send", ["--uri", uri(5541), "--ca", ca]), "client certificate")
  })

  // SASL EXTERNAL: the mutual-TLS node offers it; its user is the certificate's CN. A user and
  // password that exist nowhere prove the certificate logged in.
  const nobody = "rabbitmq-stream+tls://nobody:no-such-password@localhost:5541/%2f"

  it("SASL EXTERNAL: --sasl external and ?auth_mechanism=external log in with the certificate (PLAIN with the same URI is refused)", async () => {
    const stream = uniqueStream("sasl")
    const sent = await cli("node", "send", ["--uri", `${nobody}?auth_mechanism=external`, "--ca", ca, ...client, "--stream", stream])
    expect(sent.code, sent.stderr).toBe(0)
    const received = await cli("deno", "receive", ["--uri", nobody, "--sasl", "external", "--ca", ca, ...client, "--stream", stream])
    expect(received.code, received.stderr).toBe(0)
    expect(received.stdout).toContain("Consumed 100 messages.")
    expectRefused(await cli("node", "send", ["--uri", nobody, "--ca", ca, ...client, "--stream", stream]), "authentication failed")
  })

  it("SASL EXTERNAL on a broker that does not offer it: one line saying so, exit 1, no retry", async () => {
    const r = await cli("node", "send", ["--uri", good(), "--sasl", "external", "--ca", ca, ...client])
    expectRefused(r, "the broker does not offer SASL EXTERNAL")
    expect(r.stderr).toContain("rabbitmq_auth_mechanism_ssl")
  })

  it("SASL EXTERNAL without a client certificate or TLS: a usage error before connecting (exit 2)", async () => {
    const noCert = await cli("node", "send", ["--uri", good(), "--sasl", "external", "--ca", ca])
    expect(noCert.code).toBe(2)
    expect(noCert.stderr.trim()).toBe(
      "error: --sasl external takes the TLS client certificate as the identity: use a rabbitmq-stream+tls:// URI with --cert and --key"
    )
    const plain = await cli("node", "send", ["--uri", "rabbitmq-stream://localhost:5552/?auth_mechanism=external"])
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain("asks for auth_mechanism=external, which takes TLS")
  })
})
