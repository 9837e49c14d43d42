// The workflows: one task each, done twice. The classic trajectory is what a tool-calling agent
// does (as few turns as the task allows, independent calls in parallel), with the agent's
// reasoning over the results written as plain code. The Code Mode program is what a good LLM
// writes against the declarations `search_tools` showed it. Both must reach the same answer.
import type { ClassicAgent } from "./classic.ts";
import type { SearchArgs } from "./code-mode.ts";
import { SALES_SPREADSHEET_ID } from "./servers/ids.ts";

export interface Workflow {
  name: string;
  /** what the workflow shows, for the table */
  summary: string;
  servers: string[];
  /** the least classic ÷ Code Mode ratio the workflow should reach, if it has a goal */
  goal?: number;
  prompt: string;
  /** the classic agent's turns; returns the answer it works out from the results */
  classic(agent: ClassicAgent): Promise<unknown>;
  search: SearchArgs;
  program: string;
  /** the final answer, the same text for both agents */
  answer(value: unknown): string;
}

type Cell = string | number | boolean;
const money = (n: number) =>
  n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const spreadsheet: Workflow = {
  name: "spreadsheet",
  summary: "filter a 10,000-row sheet of sales orders down to a handful",
  servers: ["sheets"],
  goal: 75,
  prompt: `In the spreadsheet "FY2025 Sales Orders" (id ${SALES_SPREADSHEET_ID}), sheet "Orders" has one row per order under a header row. Find the EMEA orders of products in the Servers category that were returned in Q4 2025 (October to December). List each one's order ID, date, sales rep, customer, product and total, largest total first.`,
  async classic(agent) {
    const { values } = await agent.one<{ values: Cell[][] }>("sheets", "get_values", {
      spreadsheet_id: SALES_SPREADSHEET_ID,
      range: "Orders",
    });
    const [header = [], ...rows] = values;
    const at = (row: Cell[], name: string) => row[header.indexOf(name)];
    return rows
      .filter(
        (row) =>
          at(row, "Region") === "EMEA" &&
          at(row, "Category") === "Servers" &&
          at(row, "Status") === "Returned" &&
          String(at(row, "Order Date")) >= "2025-10-01",
      )
      .sort((a, b) => Number(at(b, "Total")) - Number(at(a, "Total")))
      .map((row) => ({
        order: at(row, "Order ID"),
        date: at(row, "Order Date"),
        rep: at(row, "Sales Rep"),
        customer: at(row, "Customer"),
        product: at(row, "Product"),
        total: at(row, "Total"),
      }));
  },
  search: {
    query: "read spreadsheet cell values range",
    detail: "full",
    servers: ["sheets"],
    limit: 2,
  },
  program: `const { values } = await sheets.get_values({
  spreadsheet_id: "${SALES_SPREADSHEET_ID}",
  range: "Orders",
});
const [header, ...rows] = values;
const col = (name: string) => header.indexOf(name);
const [id, date, region, rep, customer, product, category, total, status] = [
  "Order ID", "Order Date", "Region", "Sales Rep", "Customer", "Product", "Category", "Total", "Status",
].map(col);
return rows
  .filter((r) => r[region] === "EMEA" && r[category] === "Servers" && r[status] === "Returned" && String(r[date]) >= "2025-10-01")
  .sort((a, b) => Number(b[total]) - Number(a[total]))
  .map((r) => ({ order: r[id], date: r[date], rep: r[rep], customer: r[customer], product: r[product], total: r[total] }));`,
  answer(value) {
    const orders = value as Array<Record<string, string | number>>;
    const lines = orders.map(
      (o) =>
        `${o.order} (${o.date}, ${o.rep}, ${o.customer}, ${o.product}): $${money(Number(o.total))}`,
    );
    return `${orders.length} EMEA server orders were returned in Q4 2025:\n${lines.join("\n")}`;
  },
};

interface TicketSummary {
  id: number;
  priority: string;
  organization_id: number;
}
interface Ticket {
  assignee: { name: string } | null;
  sla: { first_reply_breached: boolean };
}

const fanOut: Workflow = {
  name: "fan-out",
  summary: "list 100 open tickets, fetch each, aggregate per assignee",
  servers: ["helpdesk"],
  goal: 20,
  prompt:
    "For every open ticket in the helpdesk, check whether its first-reply SLA was breached. Report, for each assignee, how many open tickets they have and how many of those breached, most breaches first.",
  async classic(agent) {
    const open: TicketSummary[] = [];
    for (let page: number | null = 1; page !== null; ) {
      const listed: { tickets: TicketSummary[]; next_page: number | null } = await agent.one(
        "helpdesk",
        "list_tickets",
        { status: "open", per_page: 100, page },
      );
      open.push(...listed.tickets);
      page = listed.next_page;
    }
    const tickets = (await agent.turn(
      open.map((t) => ({ server: "helpdesk", tool: "get_ticket", args: { ticket_id: t.id } })),
    )) as Ticket[];
    return perAssignee(tickets);
  },
  search: { query: "list tickets get ticket SLA", detail: "full", servers: ["helpdesk"], limit: 2 },
  program: `const open: helpdesk.ListTicketsOutput["tickets"] = [];
for (let page: number | null = 1; page !== null; ) {
  const listed = await helpdesk.list_tickets({ status: "open", per_page: 100, page });
  open.push(...listed.tickets);
  page = listed.next_page;
}
const tickets = await Promise.all(open.map((t) => helpdesk.get_ticket({ ticket_id: t.id })));
const byAgent = new Map<string, { assignee: string; open: number; breached: number }>();
for (const t of tickets) {
  const name = t.assignee?.name ?? "(unassigned)";
  const row = byAgent.get(name) ?? { assignee: name, open: 0, breached: 0 };
  row.open++;
  if (t.sla.first_reply_breached) row.breached++;
  byAgent.set(name, row);
}
return [...byAgent.values()].sort((a, b) => b.breached - a.breached || a.assignee.localeCompare(b.assignee));`,
  answer(value) {
    const rows = value as Array<{ assignee: string; open: number; breached: number }>;
    const lines = rows.map((r) => `${r.assignee}: ${r.breached} of ${r.open} breached`);
    return `First-reply SLA breaches among open tickets, by assignee:\n${lines.join("\n")}`;
  },
};

function perAssignee(tickets: Ticket[]) {
  const byAgent = new Map<string, { assignee: string; open: number; breached: number }>();
  for (const ticket of tickets) {
    const name = ticket.assignee?.name ?? "(unassigned)";
    const row = byAgent.get(name) ?? { assignee: name, open: 0, breached: 0 };
    row.open++;
    if (ticket.sla.first_reply_breached) row.breached++;
    byAgent.set(name, row);
  }
  return [...byAgent.values()].sort(
    (a, b) => b.breached - a.breached || a.assignee.localeCompare(b.assignee),
  );
}

interface Account {
  name: string;
  owner: { email: string };
  renewal_date: string;
  support_org_id: number;
}

const join: Workflow = {
  name: "join",
  summary: "CRM accounts joined with helpdesk tickets (two servers)",
  servers: ["crm", "helpdesk"],
  prompt:
    "Which enterprise accounts renewing before 2026-07-01 have open tickets of high or urgent priority? For each, give the account name, its owner's email, the renewal date and the number of such tickets, most tickets first.",
  async classic(agent) {
    const [accounts, high, urgent] = (await agent.turn([
      { server: "crm", tool: "list_accounts", args: { tier: "enterprise", limit: 100 } },
      {
        server: "helpdesk",
        tool: "list_tickets",
        args: { status: "open", priority: "high", per_page: 100 },
      },
      {
        server: "helpdesk",
        tool: "list_tickets",
        args: { status: "open", priority: "urgent", per_page: 100 },
      },
    ])) as [
      { accounts: Account[]; next_cursor: string | null },
      { tickets: TicketSummary[]; next_page: number | null },
      { tickets: TicketSummary[]; next_page: number | null },
    ];
    if (accounts.next_cursor !== null || high.next_page !== null || urgent.next_page !== null)
      throw new Error("join: the data outgrew one page; the trajectory must page");
    const counts = new Map<number, number>();
    for (const t of [...high.tickets, ...urgent.tickets])
      counts.set(t.organization_id, (counts.get(t.organization_id) ?? 0) + 1);
    return accounts.accounts
      .filter((a) => a.renewal_date < "2026-07-01" && counts.has(a.support_org_id))
      .map((a) => ({
        account: a.name,
        owner: a.owner.email,
        renewal: a.renewal_date,
        tickets: counts.get(a.support_org_id),
      }))
      .sort((a, b) => (b.tickets ?? 0) - (a.tickets ?? 0) || a.account.localeCompare(b.account));
  },
  search: {
    query: "list accounts tickets",
    detail: "full",
    servers: ["crm", "helpdesk"],
    limit: 3,
  },
  program: `const [{ accounts }, high, urgent] = await Promise.all([
  crm.list_accounts({ tier: "enterprise", limit: 100 }),
  helpdesk.list_tickets({ status: "open", priority: "high", per_page: 100 }),
  helpdesk.list_tickets({ status: "open", priority: "urgent", per_page: 100 }),
]);
const counts = new Map<number, number>();
for (const t of [...high.tickets, ...urgent.tickets]) counts.set(t.organization_id, (counts.get(t.organization_id) ?? 0) + 1);
return accounts
  .filter((a) => a.renewal_date < "2026-07-01" && counts.has(a.support_org_id))
  .map((a) => ({ account: a.name, owner: a.owner.email, renewal: a.renewal_date, tickets: counts.get(a.support_org_id) }))
  .sort((a, b) => (b.tickets ?? 0) - (a.tickets ?? 0) || a.account.localeCompare(b.account));`,
  answer(value) {
    const rows = value as Array<{
      account: string;
      owner: string;
      renewal: string;
      tickets: number;
    }>;
    const lines = rows.map(
      (r) => `${r.account} (owner ${r.owner}, renews ${r.renewal}): ${r.tickets}`,
    );
    return `${rows.length} enterprise accounts renewing in H1 2026 have open high/urgent tickets:\n${lines.join("\n")}`;
  },
};

interface Invoice {
  number: string;
  customer_id: string;
  amount_due: number;
  currency: string;
}

const catalog: Workflow = {
  name: "catalog",
  summary: "3 of 540 tools of a SaaS-suite server",
  servers: ["saas"],
  prompt:
    "In Billing, find the overdue invoices of more than 20,000 (in any currency). For each, give the invoice number, the amount and currency, and the customer's name and email, largest amount first.",
  async classic(agent) {
    const overdue: Invoice[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: Invoice[]; next_cursor: string | null } = await agent.one(
        "saas",
        "billing_list_invoices",
        { status: "overdue", limit: 100, ...(cursor === null ? {} : { cursor }) },
      );
      overdue.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor !== null);
    const large = overdue.filter((i) => i.amount_due > 20_000);
    const ids = [...new Set(large.map((i) => i.customer_id))];
    const customers = (await agent.turn(
      ids.map((id) => ({ server: "saas", tool: "billing_get_customer", args: { id } })),
    )) as Array<{ id: string; name: string; email: string }>;
    const byId = new Map(customers.map((c) => [c.id, c]));
    return large
      .sort((a, b) => b.amount_due - a.amount_due)
      .map((i) => ({
        invoice: i.number,
        amount: i.amount_due,
        currency: i.currency,
        customer: byId.get(i.customer_id)?.name,
        email: byId.get(i.customer_id)?.email,
      }));
  },
  search: {
    query: "overdue invoices; retrieve a customer by its ID",
    detail: "full",
    servers: ["saas"],
    limit: 6,
  },
  program: `const overdue: saas.BillingListInvoicesOutput["data"] = [];
let cursor: string | null = null;
do {
  const page = await saas.billing_list_invoices({ status: "overdue", limit: 100, ...(cursor === null ? {} : { cursor }) });
  overdue.push(...page.data);
  cursor = page.next_cursor;
} while (cursor !== null);
const large = overdue.filter((i) => i.amount_due > 20000).sort((a, b) => b.amount_due - a.amount_due);
const ids = [...new Set(large.map((i) => i.customer_id))];
const customers = new Map((await Promise.all(ids.map((id) => saas.billing_get_customer({ id })))).map((c) => [c.id, c]));
return large.map((i) => ({
  invoice: i.number,
  amount: i.amount_due,
  currency: i.currency,
  customer: customers.get(i.customer_id)?.name,
  email: customers.get(i.customer_id)?.email,
}));`,
  answer(value) {
    const rows = value as Array<Record<string, string | number>>;
    const lines = rows.map(
      (r) => `${r.invoice}: ${money(Number(r.amount))} ${r.currency}, ${r.customer} <${r.email}>`,
    );
    return `${rows.length} overdue invoices over 20,000:\n${lines.join("\n")}`;
  },
};

interface Graph {
  entities: Array<{ name: string; entityType: string }>;
  relations: Array<{ from: string; to: string; relationType: string }>;
}
const NEW_HIRE = {
  name: "Priya Raman",
  entityType: "person",
  observations: ["Senior backend engineer", "Based in Toronto", "Joined 2026"],
};
const NEW_HIRE_RELATIONS = [
  { from: "Priya Raman", to: "Payments", relationType: "member_of" },
  { from: "Priya Raman", to: "Ledger", relationType: "works_on" },
];

/** Who works on a project that uses Kafka, by team: the same reasoning on either graph. */
function kafkaPeopleByTeam(relations: Graph["relations"]): Record<string, string[]> {
  const kafkaProjects = new Set(
    relations.filter((r) => r.relationType === "uses" && r.to === "Kafka").map((r) => r.from),
  );
  const teamOf = new Map(
    relations.filter((r) => r.relationType === "member_of").map((r) => [r.from, r.to]),
  );
  const byTeam = new Map<string, Set<string>>();
  for (const r of relations) {
    if (r.relationType !== "works_on" || !kafkaProjects.has(r.to)) continue;
    const team = teamOf.get(r.from) ?? "(no team)";
    byTeam.set(team, (byTeam.get(team) ?? new Set()).add(r.from));
  }
  return Object.fromEntries(
    [...byTeam.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([team, people]) => [team, [...people].sort()]),
  );
}

const memory: Workflow = {
  name: "memory",
  summary: "server-memory: record a new hire, then answer from the graph",
  servers: ["memory"],
  prompt:
    "Record in the knowledge graph that Priya Raman joined the Payments team (a senior backend engineer based in Toronto, joined 2026) and works on Ledger. Then tell me who works on projects that use Kafka, grouped by their team.",
  async classic(agent) {
    // The server rewrites its whole file on each write, so writes go one turn at a time.
    await agent.one("memory", "create_entities", { entities: [NEW_HIRE] });
    await agent.one("memory", "create_relations", { relations: NEW_HIRE_RELATIONS });
    // Reading only what the question needs (Kafka's neighbours, then theirs) instead of the
    // whole graph, when that costs fewer tokens, is what a careful agent would do.
    const kafka = await agent.one<Graph>("memory", "search_nodes", { query: "Kafka" });
    const projects = [
      ...new Set(
        kafka.relations
          .filter((r) => r.relationType === "uses" && r.to === "Kafka")
          .map((r) => r.from),
      ),
    ];
    const around = await agent.one<Graph>("memory", "open_nodes", { names: projects });
    const people = [
      ...new Set(
        around.relations
          .filter((r) => r.relationType === "works_on" && projects.includes(r.to))
          .map((r) => r.from),
      ),
    ];
    const teams = await agent.one<Graph>("memory", "open_nodes", { names: people });
    return kafkaPeopleByTeam([...kafka.relations, ...around.relations, ...teams.relations]);
  },
  search: {
    query: "create entities relations read graph",
    detail: "full",
    servers: ["memory"],
    limit: 3,
  },
  program: `await memory.create_entities({ entities: [${JSON.stringify(NEW_HIRE)}] });
await memory.create_relations({ relations: ${JSON.stringify(NEW_HIRE_RELATIONS)} });
const { relations } = await memory.read_graph();
const kafkaProjects = new Set(relations.filter((r) => r.relationType === "uses" && r.to === "Kafka").map((r) => r.from));
const teamOf = new Map(relations.filter((r) => r.relationType === "member_of").map((r) => [r.from, r.to]));
const byTeam = new Map<string, Set<string>>();
for (const r of relations) {
  if (r.relationType !== "works_on" || !kafkaProjects.has(r.to)) continue;
  const team = teamOf.get(r.from) ?? "(no team)";
  byTeam.set(team, (byTeam.get(team) ?? new Set()).add(r.from));
}
return Object.fromEntries(
  [...byTeam.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([team, people]) => [team, [...people].sort()]),
);`,
  answer(value) {
    const byTeam = value as Record<string, string[]>;
    const lines = Object.entries(byTeam).map(([team, people]) => `${team}: ${people.join(", ")}`);
    return `Recorded Priya Raman. People on Kafka projects, by team:\n${lines.join("\n")}`;
  },
};

function filesystem(root: string): Workflow {
  const count = (text: string) => text.split("/v1/charges").length - 1;
  const summarize = (files: Array<{ path: string; text: string }>) => {
    const hits = files
      .map((f) => ({ path: f.path, mentions: count(f.text) }))
      .filter((f) => f.mentions > 0)
      .sort((a, b) => a.path.localeCompare(b.path));
    const byFolder: Record<string, number> = {};
    for (const hit of hits) {
      const top = hit.path.split("/")[0] ?? hit.path;
      byFolder[top] = (byFolder[top] ?? 0) + hit.mentions;
    }
    return { files: hits, byFolder };
  };
  return {
    name: "filesystem",
    summary: "server-filesystem: which of 52 files mention an endpoint",
    servers: ["filesystem"],
    prompt: `The repository at ${root} must stop calling the payment provider's deprecated \`/v1/charges\` endpoint. Which files (Markdown and YAML) still mention it? Count the mentions per file and per top-level folder.`,
    async classic(agent) {
      const found = await agent.one<{ content: string }>("filesystem", "search_files", {
        path: root,
        pattern: "**/*.{md,yaml}",
      });
      const paths = found.content.split("\n").filter((line) => line !== "");
      const read = await agent.one<{ content: string }>("filesystem", "read_multiple_files", {
        paths,
      });
      // read_multiple_files answers "<path>:\n<content>\n" per file, joined by "\n---\n".
      const files = read.content.split("\n---\n").map((part) => {
        const newline = part.indexOf("\n");
        const path = part.slice(0, newline).replace(/:$/, "");
        return { path: path.slice(root.length + 1), text: part.slice(newline + 1) };
      });
      return summarize(files);
    },
    search: {
      query: "search files by pattern; read text file",
      detail: "full",
      servers: ["filesystem"],
      limit: 2,
    },
    program: `const root = ${JSON.stringify(root)};
const found = await filesystem.search_files({ path: root, pattern: "**/*.{md,yaml}" });
const paths = found.content.split("\\n").filter((line) => line !== "");
const files = await Promise.all(
  paths.map(async (path) => ({ path: path.slice(root.length + 1), text: (await filesystem.read_text_file({ path })).content })),
);
const hits = files
  .map((f) => ({ path: f.path, mentions: f.text.split("/v1/charges").length - 1 }))
  .filter((f) => f.mentions > 0)
  .sort((a, b) => a.path.localeCompare(b.path));
const byFolder: Record<string, number> = {};
for (const h of hits) byFolder[h.path.split("/")[0]] = (byFolder[h.path.split("/")[0]] ?? 0) + h.mentions;
return { files: hits, byFolder };`,
    answer(value) {
      const { files, byFolder } = value as {
        files: Array<{ path: string; mentions: number }>;
        byFolder: Record<string, number>;
      };
      const lines = files.map((f) => `${f.path}: ${f.mentions}`);
      const folders = Object.entries(byFolder).map(([folder, n]) => `${folder} ${n}`);
      return `${files.length} files still mention /v1/charges (by folder: ${folders.join(", ")}):\n${lines.join("\n")}`;
    },
  };
}

export function workflows(paths: { projectRoot: string }): Workflow[] {
  return [spreadsheet, fanOut, join, catalog, memory, filesystem(paths.projectRoot)];
}
