// A broker scripts/broker.sh did not start (a non-root user's own RabbitMQ): `up` uses it as it is,
// `down` leaves it alone, and `npm test` leaves out exactly the test files that need a broker the
// script controls. A non-root user with no broker gets one line saying what to do.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { needsManagedBroker } from "../../vitest.config.js"
import { root, run, withStream } from "./helpers.js"

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "unmanaged-"))
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }))

describe("a broker scripts/broker.sh did not start", () => {
  // A state directory of its own has no record of starting the broker that answers on 5552.
  const foreign = { BROKER_STATE_DIR: path.join(scratch, "state") }

  it("is used as it is by up, left alone by down, and has no mode", async () => {
    const up = await run("bash", ["scripts/broker.sh", "up"], foreign)
    expect(up.code, up.stderr).toBe(0)
    expect(up.stderr).toContain("not started by this script")
    expect(fs.existsSync(path.join(foreign.BROKER_STATE_DIR, "tls"))).toBe(false)
    const mode = await run("bash", ["scripts/broker.sh", "mode"], foreign)
    expect(mode).toMatchObject({ code: 0, stdout: "" })
    const down = await run("bash", ["scripts/broker.sh", "down"], foreign)
    expect(down.stderr).toContain("nothing to stop")
    // Still answering: a stream can be declared.
    await withStream("unmanaged", async () => {})
    expect((await run("bash", ["scripts/broker.sh", "mode"])).stdout.trim()).not.toBe("")
  })

  it("makes npm test leave out exactly the files that need a managed broker, and say so", async () => {
    const listed = await run("npx", ["vitest", "list", "--filesOnly"], { TEST_UNMANAGED_BROKER: "1" })
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.stderr).toContain(`NOT RUN: ${needsManagedBroker.length} test files`)
    const files = listed.stdout.split("\n").filter((line) => line.endsWith(".test.ts"))
    for (const file of needsManagedBroker) {
      expect(files).not.toContain(file)
      expect(fs.existsSync(path.join(root, file)), file).toBe(true)
    }
    expect(files).toContain("test/integration/offset-tracking.test.ts")
    expect(files.length + needsManagedBroker.length).toBe(
      (await run("npx", ["vitest", "list", "--filesOnly"])).stdout.split("\n").filter((l) => l.endsWith(".test.ts"))
        .length
    )
  })
})

describe("a non-root user with no broker answering", () => {
  it("gets one line saying what to do, and exit 1", async () => {
    // nobody cannot read the clone CI runs in (a 0700 temp dir): a readable copy of the script.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "broker-sh-"))
    try {
      fs.chmodSync(dir, 0o755)
      fs.copyFileSync(path.join(root, "scripts/broker.sh"), path.join(dir, "broker.sh"))
      const up = await run("setpriv", [
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "env",
        "HOME=/nonexistent",
        "RABBITMQ_STREAM_PORT=5599",
        "bash",
        path.join(dir, "broker.sh"),
        "up"
      ])
      expect(up.code).toBe(1)
      const lines = up.stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^broker: no broker answers on localhost:5599, and starting one here takes root/)
      expect(lines[0]).toContain("run this as root")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
