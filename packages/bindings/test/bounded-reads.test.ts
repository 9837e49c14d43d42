// The capped line reader on its own: where lines end across chunks, what is kept of a line over
// the cap, and which id a broken or oversized answer is charged to.
import { describe, expect, it } from "vitest";
import { LineSplitter, parseLine, recoverId } from "../src/bounded-reads.ts";

function split(maxBytes: number, chunks: string[]) {
  const seen: Array<string | { bytes: number; head: string; tail: string }> = [];
  const splitter = new LineSplitter(maxBytes, {
    line: (bytes) => seen.push(bytes.toString()),
    oversized: (bytes, head, tail) =>
      seen.push({ bytes, head: head.toString(), tail: tail.toString() }),
  });
  for (const chunk of chunks) splitter.push(Buffer.from(chunk));
  return seen;
}

describe("LineSplitter", () => {
  it("joins lines split across chunks and splits chunks holding several", () => {
    expect(split(100, ["ab", "c\nde", "f\ng\n", "h"])).toEqual(["abc", "def", "g"]);
  });

  it("keeps only both ends of a line over the cap, and reads on after it", () => {
    const long = `{"id":1,${"x".repeat(2000)},"id":7}`;
    const seen = split(1000, [
      long.slice(0, 700),
      long.slice(700, 1500),
      `${long.slice(1500)}\nok\n`,
    ]);
    expect(seen).toHaveLength(2);
    const [big, next] = seen as [{ bytes: number; head: string; tail: string }, string];
    expect(big.bytes).toBe(long.length);
    expect(big.head).toBe(long.slice(0, 256));
    expect(big.tail).toBe(long.slice(-256));
    expect(next).toBe("ok");
  });

  it("keeps the right tail when the line goes over the cap in a short last piece", () => {
    const line = `${"x".repeat(995)},"jsonrpc":"2.0","id":7}`;
    const [big] = split(1000, [line.slice(0, 995), `${line.slice(995)}\n`]);
    expect(big).toMatchObject({ bytes: line.length, tail: line.slice(-256) });
  });
});

describe("recoverId", () => {
  it("reads the id an SDK server writes last, or another writes first", () => {
    expect(recoverId("", '{"result":{},"jsonrpc":"2.0","id":42}')).toBe(42);
    expect(recoverId('{"jsonrpc":"2.0","id":"a-1","result":{', "")).toBe("a-1");
    expect(recoverId('{"id":3,"jsonrpc":"2.0","result":{', "")).toBe(3);
  });

  it("is not fooled by an id inside the content or a nested object", () => {
    // In a string, quotes are escaped: the text cannot end the message as its id.
    expect(
      recoverId("", '{"result":{"text":"\\"jsonrpc\\":\\"2.0\\",\\"id\\":9}"}'),
    ).toBeUndefined();
    expect(recoverId("", '{"result":{"item":{"id":9}}}')).toBeUndefined();
    // A truncated answer ending in a nested object's id.
    expect(recoverId("", '{"result":{"item":{"id":9}')).toBeUndefined();
  });

  it("charges nothing to a request or notification from the server", () => {
    expect(recoverId('{"method":"sampling/createMessage","params":{', '"id":3}')).toBeUndefined();
  });
});

describe("parseLine", () => {
  it("passes a valid message, with or without a CR", () => {
    expect(parseLine(Buffer.from('{"jsonrpc":"2.0","id":1,"result":{}}\r'))).toEqual({
      message: { jsonrpc: "2.0", id: 1, result: {} },
    });
    expect(parseLine(Buffer.from("  "))).toBeUndefined();
  });

  it("turns an answer that is not JSON-RPC into an error for its request", () => {
    const parsed = parseLine(Buffer.from('{"jsonrpc":"2.0","id":5,"result":[1]}'));
    expect(parsed).toMatchObject({
      refused: { id: 5, error: { message: expect.stringMatching(/its result is not an object/) } },
    });
  });

  it("reports what answers no request", () => {
    expect(parseLine(Buffer.from("hello"))).toMatchObject({ error: expect.any(Error) });
    expect(parseLine(Buffer.from('{"method":7}'))).toMatchObject({ error: expect.any(Error) });
  });
});
