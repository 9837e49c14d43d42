// globalThis has another name for itself, `globalThis.globalThis`: a program that reaches servers
// through it, by a computed name, may reach any of them.
import { describe, expect, it } from "vitest";
import { serversUsedBy } from "../src/index.ts";

const servers = ["github", "slack"];
const used = (body: string) => serversUsedBy(`(async function() {\n${body}\n});`, servers);

describe("serversUsedBy, globalThis by another name", () => {
  it("gives every server to a program that indexes globalThis.globalThis", () => {
    expect(used("return globalThis.globalThis[input.name];")).toEqual(servers);
    expect(used("return globalThis['globalThis'][input.name];")).toEqual(servers);
  });
});
