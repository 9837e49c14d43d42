// Which servers a job connects to is read from its compiled program: these are the rules, on
// JavaScript as esbuild writes a program's body (an async function expression).
import { describe, expect, it } from "vitest";
import { serversUsedBy } from "../src/index.ts";

const servers = ["github", "my-server", "slack", "delete", "unused"];
const used = (body: string) => serversUsedBy(`(async function() {\n${body}\n});`, servers);

describe("serversUsedBy", () => {
  it("finds the servers a program names as free identifiers, by their namespace", () => {
    expect(used("return 42;")).toEqual([]);
    expect(used("return await github.list_issues({});")).toEqual(["github"]);
    expect(used("return [await my_server.x(), await delete_.y()];")).toEqual([
      "my-server",
      "delete",
    ]);
    // In the order given, not the program's.
    expect(used("await slack.post({}); return github;")).toEqual(["github", "slack"]);
  });

  it("leaves out a name the program binds itself", () => {
    expect(used("const github = 1; return github;")).toEqual([]);
    expect(used("function f(slack) { return slack; } return f(1);")).toEqual([]);
    expect(used("try {} catch (github) { return github; } return { github: 1 }.github;")).toEqual(
      [],
    );
    // A property of some other object is not the namespace.
    expect(used("return input.github + input['slack'];")).toEqual([]);
  });

  it("counts globalThis.x and globalThis['x'] with the name written out", () => {
    expect(used("return [globalThis.github, globalThis['slack'], globalThis[`unused`]];")).toEqual([
      "github",
      "slack",
      "unused",
    ]);
  });

  it("gives every server to a program that uses globalThis any other way", () => {
    expect(used("const name = 'github'; return globalThis[name];")).toEqual(servers);
    expect(used("const g = globalThis; return g.github;")).toEqual(servers);
  });
});
