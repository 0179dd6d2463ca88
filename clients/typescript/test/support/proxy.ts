/**
 * A fault-injecting HTTP proxy in front of the real server (the TypeScript twin of
 * tests/clients/proxy.py). Each request takes the next planned action, then "forward":
 * - "forward": pass it on, and the answer back;
 * - "drop": pass it on, wait for the whole answer (the server has committed), then close the
 *   client's connection without answering;
 * - a Reply: answer without reaching the server (a gateway's 503 with Retry-After).
 * One request per connection (`connection: close`).
 */
import net from "node:net";
import type { AddressInfo } from "node:net";

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}
export type Action = "forward" | "drop" | Reply;
export interface Seen {
  method: string;
  path: string;
  headers: Record<string, string>;
  action: string;
}

export class FaultProxy {
  readonly seen: Seen[] = [];
  private readonly planned: Action[] = [];
  private readonly server: net.Server;

  private constructor(private readonly upstreamPort: number) {
    this.server = net.createServer((socket) => this.handle(socket));
  }

  static async start(upstreamPort: number): Promise<FaultProxy> {
    const proxy = new FaultProxy(upstreamPort);
    await new Promise<void>((done) => proxy.server.listen(0, "127.0.0.1", done));
    return proxy;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  plan(...actions: Action[]): void {
    this.planned.push(...actions);
  }

  requests(path: string): Seen[] {
    return this.seen.filter((s) => s.path.split("?")[0] === path);
  }

  async close(): Promise<void> {
    await new Promise<void>((done) => this.server.close(() => done()));
  }

  private handle(socket: net.Socket): void {
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [requestLine = "", ...lines] = buffer.subarray(0, end).toString("latin1").split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const at = line.indexOf(":");
        if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
      }
      const length = Number(headers["content-length"] ?? "0");
      if (buffer.length < end + 4 + length) return;
      socket.off("data", onData);
      const body = buffer.subarray(end + 4, end + 4 + length);
      void this.act(socket, requestLine, headers, body);
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  }

  private async act(socket: net.Socket, requestLine: string, headers: Record<string, string>,
                    body: Buffer): Promise<void> {
    const [method = "", path = ""] = requestLine.split(" ");
    const action = this.planned.shift() ?? "forward";
    this.seen.push({ method, path, headers,
                     action: typeof action === "string" ? action : String(action.status) });
    if (typeof action !== "string") {
      const payload = Buffer.from(action.body ?? "");
      const head = [`HTTP/1.1 ${action.status} Proxy`, `content-length: ${payload.length}`,
                    "connection: close",
                    ...Object.entries(action.headers ?? {}).map(([k, v]) => `${k}: ${v}`)];
      socket.end(Buffer.concat([Buffer.from(head.join("\r\n") + "\r\n\r\n"), payload]));
      return;
    }
    const answer = await this.forward(requestLine, headers, body);
    if (action === "forward") socket.end(answer);
    else socket.destroy(); // "drop": the server answered; the client never hears it
  }

  private forward(requestLine: string, headers: Record<string, string>,
                  body: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const upstream = net.connect(this.upstreamPort, "127.0.0.1");
      const chunks: Buffer[] = [];
      const sent = { ...headers, connection: "close", host: `127.0.0.1:${this.upstreamPort}` };
      const head = requestLine + "\r\n"
        + Object.entries(sent).map(([k, v]) => `${k}: ${v}\r\n`).join("") + "\r\n";
      upstream.on("connect", () => upstream.write(Buffer.concat([Buffer.from(head, "latin1"),
                                                                 body])));
      upstream.on("data", (chunk: Buffer) => chunks.push(chunk));
      upstream.on("end", () => resolve(Buffer.concat(chunks)));
      upstream.on("error", reject);
    });
  }
}
