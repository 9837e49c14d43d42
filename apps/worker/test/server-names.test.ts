// A server's name is a namespace of programs: registration (serverNameProblem) and the sandbox
// (runProgram) must agree on which names are free, or a name accepted at registration breaks
// every job of its project.
import { serverNameProblem } from "@turtle/bindings";
import { isolateGlobalNames } from "@turtle/sandbox";
import { describe, expect, it } from "vitest";

describe("server names", () => {
  it("are refused at registration for every name a program's global scope already has", () => {
    const accepted = [...isolateGlobalNames()].filter((name) => !serverNameProblem(name));
    expect(accepted).toEqual([]);
  });
});
