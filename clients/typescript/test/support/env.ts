/**
 * What the pytest harness (tests/clients/test_typescript.py) passes in: a running
 * `coinpurse serve`, a service key, the JWT secret, a rate-limited second server, and how to
 * hold the ledger's lock from outside (tests/clients/dblock.py).
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { once } from "node:events";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through pytest `
      + "(tests/clients/test_typescript.py), which starts coinpurse serve for them");
  }
  return value;
}

export const env = {
  baseUrl: required("COINPURSE_BASE_URL"),
  apiKey: required("COINPURSE_API_KEY"),
  jwtSecret: required("COINPURSE_JWT_SECRET"),
  limitedBaseUrl: required("COINPURSE_LIMITED_BASE_URL"),
  limitedKeys: required("COINPURSE_LIMITED_API_KEYS").split(","),
  databaseUrl: required("COINPURSE_DATABASE_URL"),
  python: required("COINPURSE_PYTHON"),
  repo: required("COINPURSE_REPO"),
  upstreamPort: Number(new URL(required("COINPURSE_BASE_URL")).port),
};

const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");

/** An HS256 user token, as the deployment's auth system would issue it. */
export function userToken(userId: string): string {
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: userId, iat: now,
                                                                 exp: now + 3600 })}`;
  const signature = createHmac("sha256", env.jwtSecret).update(unsigned).digest("base64url");
  return `${unsigned}.${signature}`;
}

export const freshUser = (): string => `ts-${randomUUID().slice(0, 12)}`;

/** The ledger's write lock, held by tests/clients/dblock.py until `release()`. */
export class DbLock {
  private constructor(private readonly child: ChildProcessWithoutNullStreams) {}

  static async take(): Promise<DbLock> {
    const child = spawn(env.python, ["-m", "tests.clients.dblock", env.databaseUrl],
                        { cwd: env.repo, stdio: "pipe" });
    let output = "";
    child.stdout.setEncoding("utf8");
    while (!output.includes("\n")) {
      const [chunk] = (await Promise.race([
        once(child.stdout, "data"),
        once(child, "exit").then(() => { throw new Error(`dblock exited: ${output}`); }),
      ])) as [string];
      output += chunk;
    }
    if (output.trim() !== "locked") throw new Error(`could not take the lock: ${output}`);
    return new DbLock(child);
  }

  async release(): Promise<void> {
    const exited = once(this.child, "exit");
    this.child.stdin.end();
    const [code] = (await exited) as [number];
    if (code !== 0) throw new Error(`the lock holder failed (${code})`);
  }
}
