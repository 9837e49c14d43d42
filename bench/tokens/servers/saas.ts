// A SaaS suite behind one MCP server, the way aggregator servers expose many products: 18 apps
// of 5 resources each, and for every resource list, get, search, create, update and delete —
// 540 tools with JSON Schemas, each callable over 150 generated records per resource.
//
//   node bench/tokens/servers/saas.ts
import { companyNames, createRandom, personNames, type Random, slug, words } from "../random.ts";
import {
  type Args,
  intArg,
  type ObjectSchema,
  optionalString,
  serve,
  stringArg,
  ToolInputError,
  type ToolSpec,
} from "./serve.ts";

/** app: [title, ...resources]; a resource is `singular[/plural] id-prefix field:kind …`. */
const APPS: Record<string, string[]> = {
  crm: [
    "CRM",
    "contact ct name:person email:email phone:phone company_id:ref(co) lifecycle_stage:enum(lead|mql|sql|customer|churned) owner_email:email",
    "company/companies co name:company domain:domain industry:enum(software|healthcare|retail|finance|manufacturing) employees:int annual_revenue:money",
    "deal dl name:title amount:money stage:enum(discovery|proposal|negotiation|won|lost) company_id:ref(co) close_date:date owner_email:email",
    "activity/activities act type:enum(call|email|meeting|note) subject:title contact_id:ref(ct) occurred_at:datetime",
    "pipeline pl name:title stage_count:int is_default:bool",
  ],
  billing: [
    "Billing",
    "customer cus name:company email:email country:country currency:currency balance:money delinquent:bool",
    "invoice in number:code(INV) customer_id:ref(cus) status:enum(draft|open|paid|overdue|void) amount_due:money currency:currency due_date:date",
    "subscription sub customer_id:ref(cus) plan:enum(starter|growth|business|enterprise) status:enum(trialing|active|past_due|canceled) seats:int current_period_end:date",
    "payment py invoice_id:ref(in) amount:money method:enum(card|ach|sepa|wire) status:enum(succeeded|pending|failed|refunded)",
    "coupon cp code:code(SAVE) percent_off:percent duration:enum(once|repeating|forever) times_redeemed:int",
  ],
  support: [
    "Support",
    "ticket tk subject:title status:enum(new|open|pending|solved|closed) priority:enum(low|normal|high|urgent) requester_email:email assignee_id:ref(ag)",
    "macro mc title:title active:bool usage_count:int",
    "view vw title:title active:bool position:int",
    "satisfaction_rating csat ticket_id:ref(tk) score:enum(good|bad) comment:text",
    "agent ag name:person email:email role:enum(agent|admin|light) group:enum(tier1|tier2|billing)",
  ],
  hr: [
    "HR",
    "employee emp name:person email:email department_id:ref(dept) title:jobtitle hire_date:date location:city employment_type:enum(full_time|part_time|contractor)",
    "department dept name:department head_id:ref(emp) headcount:int",
    "time_off_request pto employee_id:ref(emp) type:enum(vacation|sick|parental|unpaid) start_date:date end_date:date status:enum(pending|approved|denied)",
    "position pos title:jobtitle department_id:ref(dept) status:enum(open|filled|frozen) salary_band:enum(L1|L2|L3|L4|L5)",
    "review rev employee_id:ref(emp) cycle:enum(2025-H1|2025-H2) rating:enum(exceeds|meets|below) reviewer_id:ref(emp)",
  ],
  payroll: [
    "Payroll",
    "pay_run pr period_start:date period_end:date status:enum(draft|approved|paid) gross_total:money employee_count:int",
    "payslip ps employee_id:ref(emp) pay_run_id:ref(pr) gross:money net:money currency:currency",
    "deduction ded employee_id:ref(emp) type:enum(pension|health|union|garnishment) amount:money recurring:bool",
    "bonus/bonuses bon employee_id:ref(emp) amount:money reason:title status:enum(proposed|approved|paid)",
    "tax_form tf employee_id:ref(emp) form:enum(W-2|1099|P60) year:year status:enum(draft|filed)",
  ],
  recruiting: [
    "Recruiting",
    "candidate cand name:person email:email source:enum(referral|linkedin|careers_site|agency) stage:enum(applied|screen|onsite|offer|hired|rejected)",
    "job job title:jobtitle department:department location:city status:enum(open|paused|closed) openings:int",
    "application app candidate_id:ref(cand) job_id:ref(job) status:enum(active|rejected|hired) applied_at:datetime",
    "interview intv application_id:ref(app) interviewer_email:email scheduled_at:datetime kind:enum(phone|technical|onsite|culture)",
    "offer off application_id:ref(app) salary:money start_date:date status:enum(draft|sent|accepted|declined)",
  ],
  projects: [
    "Projects",
    "project prj name:title status:enum(planned|active|on_hold|done) owner_email:email due_date:date",
    "task tsk title:title project_id:ref(prj) assignee_email:email status:enum(todo|in_progress|in_review|done) due_date:date priority:enum(p0|p1|p2|p3)",
    "milestone ms name:title project_id:ref(prj) due_date:date completed:bool",
    "sprint spr name:title start_date:date end_date:date state:enum(future|active|closed) goal:text",
    "comment cmt task_id:ref(tsk) author_email:email body:text",
  ],
  docs: [
    "Docs",
    "document doc title:title folder_id:ref(fld) owner_email:email word_count:int visibility:enum(private|team|public)",
    "folder fld name:title parent_id:ref(fld) item_count:int",
    "template tpl name:title category:enum(meeting|spec|rfc|onboarding) uses:int",
    "revision revn document_id:ref(doc) author_email:email summary:text",
    "share shr document_id:ref(doc) grantee_email:email role:enum(viewer|commenter|editor)",
  ],
  chat: [
    "Chat",
    "channel ch name:handle is_private:bool member_count:int topic:text",
    "message msg channel_id:ref(ch) author_id:ref(u) text:text reply_count:int",
    "user u name:person email:email title:jobtitle is_bot:bool time_zone:tz",
    "reaction rx message_id:ref(msg) emoji:enum(thumbsup|eyes|tada|white_check_mark|heart) user_id:ref(u)",
    "reminder rem user_id:ref(u) text:text remind_at:datetime done:bool",
  ],
  calendar: [
    "Calendar",
    "event evt summary:title start:datetime end:datetime organizer_email:email location:city status:enum(confirmed|tentative|cancelled)",
    "calendar cal name:title owner_email:email time_zone:tz color:enum(blue|green|red|purple)",
    "attendee att event_id:ref(evt) email:email response:enum(accepted|declined|tentative|needs_action)",
    "room rm name:title capacity:int building:city has_video:bool",
    "booking_page bp title:title duration_minutes:int owner_email:email active:bool",
  ],
  storage: [
    "Storage",
    "file file name:filename size_bytes:int mime_type:enum(application/pdf|image/png|text/csv|application/zip) bucket_id:ref(bkt) owner_email:email",
    "bucket bkt name:handle region:enum(us-east-1|eu-west-1|ap-southeast-2) object_count:int versioning:bool",
    "shared_link lnk file_id:ref(file) access:enum(anyone|org|invited) expires_at:date download_count:int",
    "version ver file_id:ref(file) size_bytes:int author_email:email",
    "retention_policy/retention_policies ret name:title days:int applies_to:enum(all|bucket|prefix) enabled:bool",
  ],
  marketing: [
    "Marketing",
    "campaign cmp name:title channel:enum(email|social|search|events) status:enum(draft|scheduled|running|completed) budget:money start_date:date",
    "list lst name:title subscriber_count:int double_opt_in:bool",
    "subscriber sbs email:email list_id:ref(lst) status:enum(subscribed|unsubscribed|bounced) country:country",
    "email_send snd campaign_id:ref(cmp) subject:title sent_count:int open_rate:percent click_rate:percent",
    "landing_page lp title:title url:url visits:int conversion_rate:percent published:bool",
  ],
  analytics: [
    "Analytics",
    "report rpt name:title owner_email:email schedule:enum(none|daily|weekly|monthly) format:enum(csv|pdf|xlsx)",
    "dashboard dsh name:title widget_count:int owner_email:email shared:bool",
    "segment seg name:title size:int definition:text",
    "metric met name:handle value:decimal unit:enum(count|usd|percent|ms) period:enum(day|week|month)",
    "funnel fun name:title steps:int conversion_rate:percent",
  ],
  inventory: [
    "Inventory",
    "product prd name:title sku:code(SKU) price:money category:enum(hardware|software|services|accessories) active:bool",
    "warehouse wh name:title city:city country:country capacity:int",
    "stock_level stk product_id:ref(prd) warehouse_id:ref(wh) on_hand:int reserved:int reorder_point:int",
    "supplier sup name:company email:email country:country lead_time_days:int rating:enum(A|B|C)",
    "purchase_order po supplier_id:ref(sup) status:enum(draft|submitted|received|cancelled) total:money expected_date:date",
  ],
  shipping: [
    "Shipping",
    "shipment shp order_ref:code(ORD) carrier_id:ref(car) status:enum(label_created|in_transit|delivered|exception) destination:city weight_kg:decimal",
    "carrier car name:enum(UPS|FedEx|DHL|USPS|OnTrac) account_number:code(ACCT) active:bool",
    "label lbl shipment_id:ref(shp) tracking_number:code(1Z) format:enum(pdf|zpl|png) cost:money",
    "return rma shipment_id:ref(shp) reason:enum(damaged|wrong_item|no_longer_needed) status:enum(requested|approved|received|refunded)",
    "pickup pck carrier_id:ref(car) scheduled_for:datetime city:city package_count:int",
  ],
  accounting: [
    "Accounting",
    "journal_entry/journal_entries je memo:text date:date debit_total:money credit_total:money posted:bool",
    "ledger_account gl name:title code:int type:enum(asset|liability|equity|revenue|expense) balance:money",
    "vendor ven name:company email:email payment_terms:enum(net15|net30|net60) country:country",
    "bill bill vendor_id:ref(ven) amount:money due_date:date status:enum(draft|open|paid|overdue)",
    "expense exp employee_email:email amount:money category:enum(travel|meals|software|equipment) status:enum(submitted|approved|reimbursed|rejected) date:date",
  ],
  devops: [
    "DevOps",
    "deployment dpl service_id:ref(svc) version:semver environment:enum(dev|staging|production) status:enum(pending|running|succeeded|failed|rolled_back) started_at:datetime",
    "service svc name:handle owner_team:department tier:enum(tier0|tier1|tier2) repo_url:url",
    "incident inc title:title severity:enum(sev1|sev2|sev3|sev4) status:enum(triggered|acknowledged|resolved) service_id:ref(svc) opened_at:datetime",
    "alert alr name:handle service_id:ref(svc) state:enum(ok|warning|critical) threshold:decimal",
    "pipeline_run run pipeline:handle branch:handle status:enum(queued|running|passed|failed) duration_seconds:int",
  ],
  security: [
    "Security",
    "role rol name:handle description:text member_count:int builtin:bool",
    "audit_event aud actor_email:email action:enum(login|export|permission_change|api_key_created) ip_address:ip occurred_at:datetime",
    "api_key key name:title prefix:code(tk) scope:enum(read|write|admin) last_used_at:datetime revoked:bool",
    "policy/policies pol name:title type:enum(password|session|ip_allowlist|mfa) enforced:bool",
    "sso_connection sso provider:enum(okta|azure_ad|google|onelogin) domain:domain status:enum(active|testing|disabled)",
  ],
};
const RECORDS_PER_RESOURCE = 150;

const PEOPLE = personNames(createRandom("saas.people"), 60);
const COMPANIES = companyNames(createRandom("saas.companies"), 120);
const TITLE_A = words(
  "Quarterly Onboarding Migration Renewal Launch Security Pricing Roadmap Hiring Vendor Customer Partner",
);
const TITLE_B = words("review plan checklist update sync kickoff retro audit rollout brief");
const TEXT = [
  "Follow up with the account team before the end of the quarter.",
  "Blocked on legal review; expected to clear next week.",
  "Numbers reconciled with finance on the last close.",
  "Customer asked for a walkthrough of the new workflow.",
  "Owner changed after the reorg; see the handover notes.",
  "Needs sign-off from the security team before rollout.",
];
const CITIES = words(
  "Berlin London Austin Toronto Lisbon Singapore Sydney Paris Chicago Amsterdam Nairobi Seoul",
);
const COUNTRIES = words("DE GB US CA PT SG AU FR NL KE KR BR");
const DEPARTMENTS = words("Engineering Sales Marketing Finance Support Operations Legal People");
const JOB_TITLES = [
  "Software Engineer",
  "Account Executive",
  "Product Manager",
  "Data Analyst",
  "Support Specialist",
  "Finance Manager",
  "Recruiter",
  "Site Reliability Engineer",
];

interface Field {
  name: string;
  kind: string;
  /** enum values, ref prefix or code prefix */
  param: string | undefined;
}
interface Resource {
  app: string;
  appTitle: string;
  singular: string;
  plural: string;
  prefix: string;
  fields: Field[];
  records: Array<Record<string, unknown>>;
}

const resources: Resource[] = Object.entries(APPS).flatMap(([app, [appTitle = app, ...specs]]) =>
  specs.map((spec) => {
    const [names = "", prefix = "", ...fieldSpecs] = spec.split(" ");
    const [singular = "", plural = `${singular}s`] = names.split("/");
    const fields = fieldSpecs.map((fieldSpec) => {
      const [, name = "", kind = "", param] = /^(\w+):(\w+)(?:\((.*)\))?$/.exec(fieldSpec) ?? [];
      return { name, kind, param };
    });
    const random = createRandom(`${app}.${singular}`);
    const records = Array.from({ length: RECORDS_PER_RESOURCE }, (_, index) => {
      const created = new Date(Date.UTC(2025, 0, 1) + random.int(0, 370 * 24 * 60) * 60_000);
      return {
        id: recordId(prefix, index),
        ...fields.reduce<Record<string, unknown>>((record, field) => {
          record[field.name] = value(field, random, record);
          return record;
        }, {}),
        created_at: iso(created),
        updated_at: iso(new Date(created.getTime() + random.int(0, 30 * 24 * 60) * 60_000)),
      };
    });
    return { app, appTitle, singular, plural, prefix, fields, records };
  }),
);

function recordId(prefix: string, index: number): string {
  return `${prefix}_${(index * 7_919 + 104_729).toString(36).padStart(5, "0")}`;
}

function iso(date: Date): string {
  return date.toISOString().replace(".000Z", "Z");
}

/** A field's value; `record` holds the fields before it, so an email can match the name. */
function value(field: Field, random: Random, record: Record<string, unknown>): unknown {
  const person = () => random.pick(PEOPLE);
  const domain = (company: string) => `${slug(company).replace("-", "")}.example`;
  const named = typeof record.name === "string" ? record.name : undefined;
  switch (field.kind) {
    case "person":
      return person();
    case "company":
      return random.pick(COMPANIES);
    case "email": {
      const company =
        named !== undefined && COMPANIES.includes(named) ? named : random.pick(COMPANIES);
      const who = named !== undefined && PEOPLE.includes(named) ? named : person();
      return `${slug(who).replace("-", ".")}@${domain(company)}`;
    }
    case "phone":
      return `+1-555-${random.int(100, 999)}-${random.int(1_000, 9_999)}`;
    case "domain":
      return domain(
        named !== undefined && COMPANIES.includes(named) ? named : random.pick(COMPANIES),
      );
    case "url":
      return `https://${slug(random.pick(COMPANIES)).replace("-", "")}.example/${slug(random.pick(TITLE_A))}`;
    case "title":
      return `${random.pick(TITLE_A)} ${random.pick(TITLE_B)}`;
    case "text":
      return random.pick(TEXT);
    case "handle":
      return `${slug(random.pick(TITLE_A))}-${slug(random.pick(TITLE_B))}`;
    case "filename":
      return `${slug(random.pick(TITLE_A))}-${slug(random.pick(TITLE_B))}.${random.pick(["pdf", "png", "csv", "zip"])}`;
    case "jobtitle":
      return random.pick(JOB_TITLES);
    case "department":
      return random.pick(DEPARTMENTS);
    case "city":
      return random.pick(CITIES);
    case "country":
      return random.pick(COUNTRIES);
    case "currency":
      return random.pick(["USD", "EUR", "GBP"]);
    case "tz":
      return random.pick(["Europe/Berlin", "America/New_York", "Asia/Singapore", "UTC"]);
    case "ip":
      return `203.0.113.${random.int(1, 254)}`;
    case "semver":
      return `${random.int(1, 4)}.${random.int(0, 30)}.${random.int(0, 9)}`;
    case "int":
      return random.int(0, 5_000);
    case "year":
      return random.int(2023, 2025);
    case "decimal":
      return Math.round(random.next() * 10_000) / 100;
    case "percent":
      return Math.round(random.next() * 1_000) / 10;
    case "money":
      return random.money(50, 25_000);
    case "bool":
      return random.chance(0.5);
    case "date":
      return iso(new Date(Date.UTC(2025, 0, 1) + random.int(0, 420) * 86_400_000)).slice(0, 10);
    case "datetime":
      return iso(new Date(Date.UTC(2025, 0, 1) + random.int(0, 420 * 24 * 60) * 60_000));
    case "enum":
      return random.pick((field.param ?? "").split("|"));
    case "ref":
      return recordId(field.param ?? "", random.int(0, RECORDS_PER_RESOURCE - 1));
    case "code":
      return `${field.param}-${random.int(10_000, 99_999)}`;
    default:
      throw new Error(`unknown field kind ${field.kind}`);
  }
}

function fieldSchema(field: Field, resource: Resource): Record<string, unknown> {
  const target = resources.find((r) => r.app === resource.app && r.prefix === field.param);
  switch (field.kind) {
    case "int":
    case "year":
      return { type: "integer" };
    case "decimal":
      return { type: "number" };
    case "percent":
      return { type: "number", minimum: 0, maximum: 100 };
    case "money":
      return { type: "number", description: "Amount in the record's currency (USD if none)." };
    case "bool":
      return { type: "boolean" };
    case "date":
      return { type: "string", format: "date" };
    case "datetime":
      return { type: "string", format: "date-time" };
    case "email":
      return { type: "string", format: "email" };
    case "url":
      return { type: "string", format: "uri" };
    case "enum":
      return { type: "string", enum: (field.param ?? "").split("|") };
    case "ref":
      return {
        type: "string",
        description: `ID of the ${target?.singular.replaceAll("_", " ") ?? "record"}.`,
      };
    case "currency":
      return { type: "string", description: "ISO 4217 code." };
    case "country":
      return { type: "string", description: "ISO 3166-1 alpha-2 code." };
    default:
      return { type: "string" };
  }
}

function recordSchema(resource: Resource): ObjectSchema {
  return {
    type: "object",
    properties: {
      id: { type: "string" },
      ...Object.fromEntries(
        resource.fields.map((field) => [field.name, fieldSchema(field, resource)]),
      ),
      created_at: { type: "string", format: "date-time" },
      updated_at: { type: "string", format: "date-time" },
    },
    required: ["id", ...resource.fields.map((field) => field.name), "created_at", "updated_at"],
  };
}

function tools(resource: Resource): ToolSpec[] {
  const { app, appTitle, singular, plural } = resource;
  const noun = singular.replaceAll("_", " ");
  const nouns = plural.replaceAll("_", " ");
  const article = /^[aeiou]/.test(noun) ? "an" : "a";
  const fields = Object.fromEntries(resource.fields.map((f) => [f.name, fieldSchema(f, resource)]));
  const filters = resource.fields.filter(
    (f) => f.kind === "enum" || f.kind === "ref" || f.kind === "bool",
  );
  const textFields = resource.fields.filter((f) =>
    ["person", "company", "title", "email", "code", "handle", "filename"].includes(f.kind),
  );
  const idInput = {
    type: "object",
    properties: { id: { type: "string", description: `The ${noun}'s ID.` } },
    required: ["id"],
  } as const;
  const find = (args: Args) => {
    const id = stringArg(args, "id");
    const record = resource.records.find((r) => r.id === id);
    if (record === undefined)
      throw new ToolInputError(`resource_missing: No such ${noun}: '${id}'`);
    return record;
  };
  const check = (args: Args) => {
    for (const [name, given] of Object.entries(args)) {
      const field = resource.fields.find((f) => f.name === name);
      if (field?.kind === "enum" && !(field.param ?? "").split("|").includes(String(given)))
        throw new ToolInputError(
          `invalid_request: ${name} must be one of ${field.param?.replaceAll("|", ", ")}`,
        );
    }
  };
  const filterList = filters.map((f) => f.name).join(", ");
  return [
    {
      tool: {
        name: `${app}_list_${plural}`,
        description: `List ${nouns} in ${appTitle}, newest first.${filterList ? ` Filter by ${filterList} or creation date;` : " Filter by creation date;"} paginate with \`cursor\` (the previous page's \`next_cursor\`).`,
        inputSchema: {
          type: "object",
          properties: {
            ...Object.fromEntries(filters.map((f) => [f.name, fieldSchema(f, resource)])),
            created_after: { type: "string", format: "date-time" },
            created_before: { type: "string", format: "date-time" },
            limit: { type: "integer", minimum: 1, maximum: 100, default: 25 },
            cursor: { type: "string" },
          },
        },
        outputSchema: {
          type: "object",
          properties: {
            data: { type: "array", items: recordSchema(resource) },
            has_more: { type: "boolean" },
            next_cursor: { type: ["string", "null"] },
          },
          required: ["data", "has_more", "next_cursor"],
        },
      },
      run: (args) => {
        check(args);
        const after = optionalString(args, "created_after");
        const before = optionalString(args, "created_before");
        const found = resource.records
          .filter(
            (r) =>
              filters.every((f) => args[f.name] === undefined || r[f.name] === args[f.name]) &&
              (after === undefined || String(r.created_at) > after) &&
              (before === undefined || String(r.created_at) < before),
          )
          .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
        const start =
          args.cursor === undefined ? 0 : Number.parseInt(stringArg(args, "cursor").slice(4), 36);
        const end = start + intArg(args, "limit", 25, 100);
        const more = end < found.length;
        return {
          data: found.slice(start, end),
          has_more: more,
          next_cursor: more ? `cur_${end.toString(36)}` : null,
        };
      },
    },
    {
      tool: {
        name: `${app}_get_${singular}`,
        description: `Retrieve ${article} ${noun} by its ID.`,
        inputSchema: idInput,
        outputSchema: recordSchema(resource),
      },
      run: find,
    },
    {
      tool: {
        name: `${app}_search_${plural}`,
        description: `Search ${nouns} in ${appTitle} by ${textFields.map((f) => f.name).join(" or ") || "ID"} (case-insensitive substring). Returns the matches, newest first.`,
        inputSchema: {
          type: "object",
          properties: {
            query: { type: "string" },
            limit: { type: "integer", minimum: 1, maximum: 100, default: 10 },
          },
          required: ["query"],
        },
      },
      run: (args) => {
        const query = stringArg(args, "query").toLowerCase();
        const found = resource.records.filter((r) =>
          [r.id, ...textFields.map((f) => r[f.name])].some((v) =>
            String(v).toLowerCase().includes(query),
          ),
        );
        return { data: found.slice(0, intArg(args, "limit", 10, 100)), total: found.length };
      },
    },
    {
      tool: {
        name: `${app}_create_${singular}`,
        description: `Create ${article} ${noun} in ${appTitle}. Returns the new ${noun} with its ID.`,
        inputSchema: {
          type: "object",
          properties: fields,
          required: resource.fields.slice(0, 2).map((f) => f.name),
        },
      },
      run: (args) => {
        check(args);
        const now = iso(new Date());
        const record = {
          id: recordId(resource.prefix, resource.records.length),
          ...Object.fromEntries(resource.fields.map((f) => [f.name, args[f.name] ?? null])),
          created_at: now,
          updated_at: now,
        };
        resource.records.push(record);
        return record;
      },
    },
    {
      tool: {
        name: `${app}_update_${singular}`,
        description: `Update ${article} ${noun}. Only the fields you pass change; returns the updated ${noun}.`,
        inputSchema: {
          type: "object",
          properties: { id: idInput.properties.id, ...fields },
          required: ["id"],
        },
      },
      run: (args) => {
        const record = find(args);
        check(args);
        for (const f of resource.fields)
          if (args[f.name] !== undefined) record[f.name] = args[f.name];
        record.updated_at = iso(new Date());
        return record;
      },
    },
    {
      tool: {
        name: `${app}_delete_${singular}`,
        description: `Permanently delete ${article} ${noun}. This cannot be undone.`,
        inputSchema: idInput,
      },
      run: (args) => {
        const record = find(args);
        resource.records.splice(resource.records.indexOf(record), 1);
        return { id: record.id, object: singular, deleted: true };
      },
    },
  ];
}

await serve("saas", resources.flatMap(tools));
