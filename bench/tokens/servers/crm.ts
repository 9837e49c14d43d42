// A CRM server in the shape of a HubSpot/Salesforce-style REST API: 240 accounts with owners,
// contacts and opportunities, from a fixed seed. Its accounts are the helpdesk's organizations.
//
//   node bench/tokens/servers/crm.ts
import { createRandom, FIRST_NAMES, LAST_NAMES, slug } from "../random.ts";
import { ACCOUNTS, type Account, OWNERS } from "./accounts.ts";
import { type Args, intArg, optionalString, serve, stringArg, ToolInputError } from "./serve.ts";

const TIERS = ["enterprise", "mid-market", "smb"] as const;
const STAGES = ["discovery", "proposal", "negotiation", "closed-won", "closed-lost"] as const;

function findAccount(args: Args): Account {
  const id = stringArg(args, "account_id");
  const account = ACCOUNTS.find((a) => a.id === id);
  if (account === undefined) throw new ToolInputError(`NOT_FOUND: no account with id ${id}`);
  return account;
}

function contacts(account: Account) {
  const random = createRandom(`contacts-${account.id}`);
  return Array.from({ length: random.int(2, 5) }, (_, index) => {
    const first = random.pick(FIRST_NAMES);
    const last = random.pick(LAST_NAMES);
    return {
      id: `CON-${account.id.slice(4)}${index}`,
      account_id: account.id,
      name: `${first} ${last}`,
      email: `${slug(first)}.${slug(last)}@${account.domain}`,
      title: random.pick([
        "VP Engineering",
        "Head of IT",
        "CFO",
        "Procurement Manager",
        "CTO",
        "Ops Lead",
      ]),
      phone: `+1-555-${random.int(100, 999)}-${random.int(1_000, 9_999)}`,
      is_primary: index === 0,
    };
  });
}

function opportunities(account: Account) {
  const random = createRandom(`opportunities-${account.id}`);
  return Array.from({ length: random.int(0, 3) }, (_, index) => ({
    id: `OPP-${account.id.slice(4)}${index}`,
    account_id: account.id,
    name: `${account.name} — ${random.pick(["Renewal", "Expansion", "New workspace", "Add-on: SSO"])} ${2026}`,
    stage: random.pick(STAGES),
    amount: Math.round((account.arr * random.int(10, 60)) / 100),
    close_date: `2026-${String(random.int(1, 12)).padStart(2, "0")}-${String(random.int(1, 28)).padStart(2, "0")}`,
    owner_id: account.owner.id,
  }));
}

const accountSchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    domain: { type: "string" },
    industry: { type: "string" },
    tier: { type: "string", enum: TIERS },
    arr: { type: "number", description: "Annual recurring revenue, USD." },
    employees: { type: "integer" },
    owner: {
      type: "object",
      properties: { id: { type: "string" }, name: { type: "string" }, email: { type: "string" } },
      required: ["id", "name", "email"],
    },
    health_score: { type: "integer", minimum: 0, maximum: 100 },
    renewal_date: { type: "string", format: "date" },
    lifecycle_stage: { type: "string", enum: ["customer", "expansion", "at-risk"] },
    billing_address: {
      type: "object",
      properties: { city: { type: "string" }, country: { type: "string" } },
    },
    support_org_id: {
      type: "integer",
      description: "The account's organization ID in the helpdesk.",
    },
    created_at: { type: "string", format: "date-time" },
    updated_at: { type: "string", format: "date-time" },
    url: { type: "string" },
  },
  required: ["id", "name", "tier", "arr", "owner", "renewal_date", "support_org_id"],
} as const;
const accountId = { type: "string", description: "The account's ID, e.g. ACC-1042." } as const;

await serve("crm", [
  {
    tool: {
      name: "list_accounts",
      description:
        "List customer accounts, ordered by name. Paginate with `cursor` (returned as `next_cursor`).",
      inputSchema: {
        type: "object",
        properties: {
          tier: { type: "string", enum: TIERS },
          owner_id: { type: "string" },
          industry: { type: "string" },
          lifecycle_stage: { type: "string", enum: ["customer", "expansion", "at-risk"] },
          limit: { type: "integer", minimum: 1, maximum: 100, default: 20 },
          cursor: { type: "string" },
        },
      },
      outputSchema: {
        type: "object",
        properties: {
          accounts: { type: "array", items: accountSchema },
          total: { type: "integer" },
          next_cursor: { type: ["string", "null"] },
        },
        required: ["accounts", "total", "next_cursor"],
      },
    },
    run: (args) => {
      const found = ACCOUNTS.filter(
        (a) =>
          (args.tier === undefined || a.tier === args.tier) &&
          (args.owner_id === undefined || a.owner.id === args.owner_id) &&
          (args.industry === undefined || a.industry === args.industry) &&
          (args.lifecycle_stage === undefined || a.lifecycle_stage === args.lifecycle_stage),
      ).sort((a, b) => a.name.localeCompare(b.name));
      const start = Number(optionalString(args, "cursor") ?? "0");
      const end = start + intArg(args, "limit", 20, 100);
      return {
        accounts: found.slice(start, end),
        total: found.length,
        next_cursor: end < found.length ? String(end) : null,
      };
    },
  },
  {
    tool: {
      name: "get_account",
      description: "Get one account by ID.",
      inputSchema: {
        type: "object",
        properties: { account_id: accountId },
        required: ["account_id"],
      },
      outputSchema: accountSchema,
    },
    run: (args) => findAccount(args),
  },
  {
    tool: {
      name: "search_accounts",
      description: "Find accounts whose name or domain contains the query.",
      inputSchema: {
        type: "object",
        properties: {
          query: { type: "string" },
          limit: { type: "integer", maximum: 100, default: 10 },
        },
        required: ["query"],
      },
    },
    run: (args) => {
      const query = stringArg(args, "query").toLowerCase();
      const found = ACCOUNTS.filter((a) => `${a.name} ${a.domain}`.toLowerCase().includes(query));
      return { accounts: found.slice(0, intArg(args, "limit", 10, 100)), total: found.length };
    },
  },
  {
    tool: {
      name: "list_contacts",
      description: "List an account's contacts; the primary contact comes first.",
      inputSchema: {
        type: "object",
        properties: { account_id: accountId },
        required: ["account_id"],
      },
    },
    run: (args) => ({ contacts: contacts(findAccount(args)) }),
  },
  {
    tool: {
      name: "list_opportunities",
      description: "List the open and closed opportunities (deals) of an account.",
      inputSchema: {
        type: "object",
        properties: { account_id: accountId, stage: { type: "string", enum: STAGES } },
        required: ["account_id"],
      },
    },
    run: (args) => ({
      opportunities: opportunities(findAccount(args)).filter(
        (o) => args.stage === undefined || o.stage === args.stage,
      ),
    }),
  },
  {
    tool: {
      name: "list_owners",
      description: "List the account owners (sales users).",
      inputSchema: { type: "object", properties: {} },
    },
    run: () => ({ owners: OWNERS }),
  },
  {
    tool: {
      name: "log_activity",
      description: "Log a call, meeting or note on an account's timeline.",
      inputSchema: {
        type: "object",
        properties: {
          account_id: accountId,
          type: { type: "string", enum: ["call", "meeting", "note"] },
          subject: { type: "string" },
          body: { type: "string" },
        },
        required: ["account_id", "type", "subject"],
      },
    },
    run: (args) => {
      const account = findAccount(args);
      return {
        id: `ACT-${Date.now().toString(36)}`,
        account_id: account.id,
        type: stringArg(args, "type"),
        subject: stringArg(args, "subject"),
        body: optionalString(args, "body") ?? "",
        created_at: new Date().toISOString(),
      };
    },
  },
]);
