// A helpdesk server in the shape of Zendesk's ticket API: 900 tickets from the CRM's accounts,
// 100 of them open, with requesters, agents, SLA policy state and comments, from a fixed seed.
//
//   node bench/tokens/servers/helpdesk.ts
import { addMinutes, createRandom, FIRST_NAMES, LAST_NAMES, personNames, slug } from "../random.ts";
import { ACCOUNTS, type Account } from "./accounts.ts";
import { type Args, intArg, optionalString, serve, stringArg, ToolInputError } from "./serve.ts";

const BASE = "https://acme.zendesk.com";
const NOW = "2026-01-15T12:00:00Z";
const random = createRandom("helpdesk");

const GROUPS = [
  { id: 360_005_101, name: "Tier 1" },
  { id: 360_005_102, name: "Tier 2" },
  { id: 360_005_103, name: "Billing" },
  { id: 360_005_104, name: "Enterprise Success" },
];
const AGENTS = personNames(random, 12).map((name, index) => ({
  id: 391_204_000 + index * 37,
  name,
  email: `${slug(name).replace("-", ".")}@acme.example`,
  role: "agent",
  group_id: (GROUPS[index % GROUPS.length] as (typeof GROUPS)[number]).id,
}));

interface User {
  id: number;
  name: string;
  email: string;
  organization_id: number;
}
const requesters = new Map<number, User[]>(
  ACCOUNTS.map((account, a) => [
    account.support_org_id,
    Array.from({ length: 3 }, (_, u) => {
      const first = random.pick(FIRST_NAMES);
      const last = random.pick(LAST_NAMES);
      return {
        id: 392_000_000 + a * 10 + u,
        name: `${first} ${last}`,
        email: `${slug(first)}.${slug(last)}@${account.domain}`,
        organization_id: account.support_org_id,
      };
    }),
  ]),
);

/** A support topic: its tags and some subjects and descriptions customers actually write. */
const TOPICS: Array<{ tags: string[]; type: string; subjects: string[]; bodies: string[] }> = [
  {
    tags: ["billing", "invoice"],
    type: "question",
    subjects: [
      "Invoice {inv} charged twice",
      "Proration on our December invoice looks wrong",
      "Need our VAT number on invoices",
    ],
    bodies: [
      "Our finance team noticed invoice {inv} was charged twice to the card ending {card} on {date}. Can you refund the duplicate charge and confirm once it is processed?",
      "We upgraded {n} seats mid-cycle and the prorated amount on {inv} does not match what the pricing page says. Could you walk us through the calculation?",
    ],
  },
  {
    tags: ["sso", "login"],
    type: "incident",
    subjects: [
      "SAML SSO login fails with error {code}",
      "Users locked out after IdP certificate rotation",
      "Okta SCIM provisioning stopped creating users",
    ],
    bodies: [
      "Since this morning about {n} of our users get error {code} when signing in through Okta. Nothing changed on our side except the certificate rotation on {date}. This is blocking our support team.",
      "New hires are not being provisioned: the SCIM logs show {code} for every POST /Users since {date}. Existing users can still log in.",
    ],
  },
  {
    tags: ["api", "rate-limit"],
    type: "problem",
    subjects: [
      "API returns 429 on /v2/exports since {date}",
      "Webhook deliveries delayed by {n} minutes",
      "Pagination cursor returns duplicate records",
    ],
    bodies: [
      "Our nightly sync started failing with HTTP 429 on GET /v2/exports even though we stay under {n} requests per minute. Request id of one failure: {req}. Did the limits change?",
      "Webhooks for record.updated arrive {n} minutes late since {date}; our downstream jobs time out. Example delivery id {req}.",
    ],
  },
  {
    tags: ["performance", "dashboard"],
    type: "incident",
    subjects: [
      "Dashboards take {n}s to load",
      "Report builder times out on large date ranges",
      "Search is very slow for our workspace",
    ],
    bodies: [
      "Loading the main dashboard takes around {n} seconds for everyone in our {region} office since {date}. The browser console shows long requests to /api/widgets. HAR file attached.",
      "Any report over 90 days times out after {n} seconds with a generic error. This worked fine last month and we need it for the quarterly review.",
    ],
  },
  {
    tags: ["data", "export"],
    type: "problem",
    subjects: [
      "CSV export is missing custom fields",
      "Data import stuck at {n}%",
      "Deleted records still appear in exports",
    ],
    bodies: [
      "The scheduled CSV export no longer includes our {n} custom fields since {date}. We rely on this file for our warehouse load.",
      "We started an import of {n} thousand rows on {date} and it has been stuck ever since. Job id {req}. Can you check whether it can be resumed?",
    ],
  },
  {
    tags: ["integration", "salesforce"],
    type: "incident",
    subjects: [
      "Salesforce sync failing with INVALID_FIELD",
      "Slack notifications stopped",
      "HubSpot contacts not updating",
    ],
    bodies: [
      "The Salesforce sync has failed every run since {date} with INVALID_FIELD on Account.Region__c. We did not change the field. Sync log id {req}.",
      "Notifications to our #support-alerts Slack channel stopped on {date}. Reconnecting the app did not help. Workspace id {req}.",
    ],
  },
  {
    tags: ["feature-request"],
    type: "task",
    subjects: [
      "Feature request: bulk edit for records",
      "Can we get audit logs via API?",
      "Request: more granular admin roles",
    ],
    bodies: [
      "We manage about {n} records and have to edit them one by one. A bulk edit or an import-to-update would save our ops team hours every week.",
      "Our security team needs the audit log in our SIEM. Is there an API or a streaming export on the roadmap? Our renewal review is on {date}.",
    ],
  },
];
const REGIONS = ["EMEA", "APAC", "North America", "LATAM"] as const;
const FIRST_REPLY_TARGET = { urgent: 60, high: 240, normal: 480, low: 1_440 } as const;
const OTHER_STATUSES = { new: 8, pending: 22, hold: 6, solved: 34, closed: 30 } as const;

function fill(template: string): string {
  return template
    .replaceAll("{inv}", `INV-${random.int(20_000, 99_999)}`)
    .replaceAll("{card}", String(random.int(1_000, 9_999)))
    .replaceAll("{date}", `January ${random.int(2, 14)}`)
    .replaceAll("{n}", String(random.int(3, 60)))
    .replaceAll("{code}", random.pick(["AADSTS50011", "SAML_RESPONSE_EXPIRED", "ERR_IDP_400"]))
    .replaceAll("{req}", `req_${random.int(1e9, 9e9).toString(36)}`)
    .replaceAll("{region}", random.pick(REGIONS));
}

const tickets = Array.from({ length: 900 }, (_, index) => {
  const id = 48_100 + index * 3;
  const account = random.pick(ACCOUNTS) as Account;
  const requester = random.pick(requesters.get(account.support_org_id) ?? []);
  const agent = random.chance(0.93) ? random.pick(AGENTS) : null;
  const topic = random.pick(TOPICS);
  const priority = random.weighted({ low: 20, normal: 50, high: 22, urgent: 8 });
  const status = index % 9 === 4 ? "open" : random.weighted(OTHER_STATUSES);
  const created = addMinutes("2025-07-01T00:00:00Z", index * 290 + random.int(0, 240));
  const firstReply = random.int(8, FIRST_REPLY_TARGET[priority] * 2.2);
  const replies = random.int(1, 6);
  const policy = account.tier === "enterprise" ? "Enterprise 24/7" : "Standard business hours";
  const subject = fill(random.pick(topic.subjects));
  const channel = random.weighted({ email: 60, web: 30, api: 10 });
  const updated = addMinutes(created, random.int(60, 8_000));
  const customFields = [
    { id: 360_041_118, value: topic.tags[0] },
    { id: 360_041_119, value: account.tier },
    { id: 360_041_120, value: random.pick(["us-east-1", "eu-west-1", "ap-southeast-2"]) },
  ];
  // The fields and their order are those of Zendesk's GET /api/v2/tickets/{id} (with the users
  // sideloaded in place of requester_id and assignee_id), plus the SLA and metric sideloads.
  return {
    url: `${BASE}/api/v2/tickets/${id}.json`,
    id,
    external_id: null,
    via: {
      channel,
      source:
        channel === "email"
          ? {
              from: { address: requester?.email, name: requester?.name },
              to: { name: "Acme Support", address: "support@acme.zendesk.com" },
              rel: null,
            }
          : { from: {}, to: {}, rel: null },
    },
    created_at: created,
    updated_at: updated,
    generated_timestamp: Math.floor(Date.parse(updated) / 1000),
    type: topic.type,
    subject,
    raw_subject: subject,
    description: fill(random.pick(topic.bodies)),
    priority,
    status,
    recipient: channel === "email" ? "support@acme.zendesk.com" : null,
    requester: { ...requester, locale: "en-US", time_zone: "UTC" },
    submitter_id: requester?.id,
    assignee: agent === null ? null : { id: agent.id, name: agent.name, email: agent.email },
    organization_id: account.support_org_id,
    group: GROUPS.find((group) => group.id === agent?.group_id) ?? GROUPS[0],
    collaborator_ids: [],
    follower_ids: agent === null ? [] : [agent.id],
    email_cc_ids: [],
    forum_topic_id: null,
    problem_id: null,
    has_incidents: false,
    is_public: true,
    due_at: null,
    tags: [...topic.tags, account.tier],
    custom_fields: customFields,
    satisfaction_rating: {
      score:
        status === "solved" || status === "closed"
          ? random.pick(["good", "bad", "offered"])
          : "unoffered",
    },
    sharing_agreement_ids: [],
    custom_status_id:
      360_014_000 + ["new", "open", "pending", "hold", "solved", "closed"].indexOf(status),
    fields: customFields,
    followup_ids: [],
    ticket_form_id: 360_000_918,
    brand_id: 360_000_214,
    allow_channelback: false,
    allow_attachments: true,
    from_messaging_channel: false,
    sla: {
      policy,
      first_reply_target_minutes: FIRST_REPLY_TARGET[priority],
      first_reply_breached: firstReply > FIRST_REPLY_TARGET[priority],
    },
    metrics: {
      replies,
      reopens: random.chance(0.1) ? 1 : 0,
      first_reply_minutes: firstReply,
      comment_count: replies + 1,
    },
  };
});
type Ticket = (typeof tickets)[number];

function summary(ticket: Ticket) {
  return {
    id: ticket.id,
    url: ticket.url,
    subject: ticket.subject,
    status: ticket.status,
    priority: ticket.priority,
    organization_id: ticket.organization_id,
    requester_id: ticket.requester.id,
    assignee_id: ticket.assignee?.id ?? null,
    updated_at: ticket.updated_at,
  };
}

function findTicket(args: Args): Ticket {
  const id = intArg(args, "ticket_id", -1);
  const ticket = tickets.find((t) => t.id === id);
  if (ticket === undefined) throw new ToolInputError(`RecordNotFound: ticket ${id} not found`);
  return ticket;
}

function comments(ticket: Ticket) {
  const random = createRandom(`comments-${ticket.id}`);
  const lines = [
    "Thanks for reporting this. I can reproduce it and have escalated to engineering.",
    "Could you send a HAR file or the exact request id of a failing call?",
    "Engineering deployed a fix; can you confirm it works on your side?",
    "Attached the logs you asked for.",
    "Still happening for some users this morning.",
  ];
  return Array.from({ length: ticket.metrics.comment_count }, (_, index) => {
    const byAgent = index % 2 === 1 && ticket.assignee !== null;
    return {
      id: ticket.id * 100 + index,
      author_id: byAgent ? ticket.assignee?.id : ticket.requester.id,
      public: !(byAgent && random.chance(0.2)),
      body: index === 0 ? ticket.description : random.pick(lines),
      created_at: addMinutes(ticket.created_at, index * random.int(30, 600)),
    };
  });
}

const ticketId = { type: "integer", description: "The ticket's ID." } as const;
const priority = { type: "string", enum: ["low", "normal", "high", "urgent"] } as const;
const status = {
  type: "string",
  enum: ["new", "open", "pending", "hold", "solved", "closed"],
} as const;
const userRef = {
  type: "object",
  properties: { id: { type: "integer" }, name: { type: "string" }, email: { type: "string" } },
  required: ["id", "name", "email"],
} as const;

await serve("helpdesk", [
  {
    tool: {
      name: "list_tickets",
      description:
        "List tickets, most recently updated first. Each item is a summary; use get_ticket for the requester, assignee, SLA and metrics.",
      inputSchema: {
        type: "object",
        properties: {
          status,
          priority,
          organization_id: { type: "integer" },
          assignee_id: { type: "integer" },
          page: { type: "integer", minimum: 1, default: 1 },
          per_page: { type: "integer", minimum: 1, maximum: 100, default: 25 },
        },
      },
      outputSchema: {
        type: "object",
        properties: {
          tickets: {
            type: "array",
            items: {
              type: "object",
              properties: {
                id: { type: "integer" },
                url: { type: "string" },
                subject: { type: "string" },
                status,
                priority,
                organization_id: { type: "integer" },
                requester_id: { type: "integer" },
                assignee_id: { type: ["integer", "null"] },
                updated_at: { type: "string", format: "date-time" },
              },
              required: ["id", "subject", "status", "priority", "organization_id", "updated_at"],
            },
          },
          count: { type: "integer", description: "Matching tickets on all pages." },
          next_page: { type: ["integer", "null"] },
        },
        required: ["tickets", "count", "next_page"],
      },
    },
    run: (args) => {
      const filters = ["status", "priority", "organization_id", "assignee_id"] as const;
      const found = tickets
        .filter((t) =>
          filters.every(
            (name) =>
              args[name] === undefined ||
              (name === "assignee_id" ? t.assignee?.id : t[name]) === args[name],
          ),
        )
        .sort((a, b) => b.updated_at.localeCompare(a.updated_at) || b.id - a.id);
      const page = Math.max(1, intArg(args, "page", 1));
      const perPage = Math.max(1, intArg(args, "per_page", 25, 100));
      const slice = found.slice((page - 1) * perPage, page * perPage);
      return {
        tickets: slice.map(summary),
        count: found.length,
        next_page: page * perPage < found.length ? page + 1 : null,
      };
    },
  },
  {
    tool: {
      name: "get_ticket",
      description:
        "Get one ticket with its requester, assignee, group, tags, SLA state and metrics.",
      inputSchema: { type: "object", properties: { ticket_id: ticketId }, required: ["ticket_id"] },
      outputSchema: {
        type: "object",
        properties: {
          id: { type: "integer" },
          url: { type: "string" },
          type: { type: "string" },
          subject: { type: "string" },
          description: { type: "string" },
          priority,
          status,
          requester: userRef,
          assignee: { anyOf: [userRef, { type: "null" }] },
          group: {
            type: "object",
            properties: { id: { type: "integer" }, name: { type: "string" } },
          },
          organization_id: { type: "integer" },
          tags: { type: "array", items: { type: "string" } },
          created_at: { type: "string", format: "date-time" },
          updated_at: { type: "string", format: "date-time" },
          sla: {
            type: "object",
            properties: {
              policy: { type: "string" },
              first_reply_target_minutes: { type: "integer" },
              first_reply_breached: { type: "boolean" },
            },
            required: ["policy", "first_reply_breached"],
          },
          metrics: {
            type: "object",
            properties: {
              replies: { type: "integer" },
              reopens: { type: "integer" },
              first_reply_minutes: { type: "integer" },
              comment_count: { type: "integer" },
            },
          },
        },
        required: ["id", "subject", "priority", "status", "requester", "assignee", "sla"],
      },
    },
    run: (args) => findTicket(args),
  },
  {
    tool: {
      name: "search_tickets",
      description: "Full-text search over ticket subjects and descriptions.",
      inputSchema: {
        type: "object",
        properties: {
          query: { type: "string" },
          status,
          per_page: { type: "integer", minimum: 1, maximum: 100, default: 25 },
        },
        required: ["query"],
      },
    },
    run: (args) => {
      const query = stringArg(args, "query").toLowerCase();
      const found = tickets.filter(
        (t) =>
          (args.status === undefined || t.status === args.status) &&
          `${t.subject} ${t.description}`.toLowerCase().includes(query),
      );
      return {
        results: found.slice(0, intArg(args, "per_page", 25, 100)).map(summary),
        count: found.length,
      };
    },
  },
  {
    tool: {
      name: "list_ticket_comments",
      description: "List a ticket's comments (public replies and internal notes), oldest first.",
      inputSchema: { type: "object", properties: { ticket_id: ticketId }, required: ["ticket_id"] },
    },
    run: (args) => ({ comments: comments(findTicket(args)) }),
  },
  {
    tool: {
      name: "update_ticket",
      description:
        "Change a ticket's status, priority, assignee or tags. Returns the updated ticket.",
      inputSchema: {
        type: "object",
        properties: {
          ticket_id: ticketId,
          status,
          priority,
          assignee_id: { type: "integer" },
          tags: { type: "array", items: { type: "string" }, description: "Replaces the tags." },
        },
        required: ["ticket_id"],
      },
    },
    run: (args) => {
      const ticket = findTicket(args);
      const agent =
        args.assignee_id === undefined ? undefined : AGENTS.find((a) => a.id === args.assignee_id);
      if (args.assignee_id !== undefined && agent === undefined)
        throw new ToolInputError(
          `RecordInvalid: assignee ${String(args.assignee_id)} is not an agent`,
        );
      Object.assign(ticket, {
        ...(args.status === undefined ? {} : { status: stringArg(args, "status") }),
        ...(args.priority === undefined ? {} : { priority: stringArg(args, "priority") }),
        ...(agent === undefined
          ? {}
          : { assignee: { id: agent.id, name: agent.name, email: agent.email } }),
        ...(Array.isArray(args.tags) ? { tags: args.tags.map(String) } : {}),
        updated_at: NOW,
      });
      return ticket;
    },
  },
  {
    tool: {
      name: "add_ticket_comment",
      description: "Add a public reply or an internal note to a ticket.",
      inputSchema: {
        type: "object",
        properties: {
          ticket_id: ticketId,
          body: { type: "string" },
          public: { type: "boolean", default: true, description: "false for an internal note." },
        },
        required: ["ticket_id", "body"],
      },
    },
    run: (args) => {
      const ticket = findTicket(args);
      ticket.metrics.comment_count++;
      return {
        id: ticket.id * 100 + ticket.metrics.comment_count,
        ticket_id: ticket.id,
        body: stringArg(args, "body"),
        public: args.public !== false,
        created_at: NOW,
      };
    },
  },
  {
    tool: {
      name: "list_agents",
      description: "List the support agents, with their group.",
      inputSchema: {
        type: "object",
        properties: { group: { type: "string", description: "A group name." } },
      },
    },
    run: (args) => {
      const group = optionalString(args, "group");
      const groupId = GROUPS.find((g) => g.name === group)?.id;
      return {
        agents: AGENTS.filter((a) => group === undefined || a.group_id === groupId),
        groups: GROUPS,
      };
    },
  },
]);
