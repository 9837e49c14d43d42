// Data the third-party servers work on, generated at run time from a fixed seed: a team
// knowledge graph for server-memory (a JSONL file, its storage format) and a small platform
// repository of ~50 files for server-filesystem.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createRandom, personNames, words } from "./random.ts";

interface Entity {
  name: string;
  entityType: string;
  observations: string[];
}
interface Relation {
  from: string;
  to: string;
  relationType: string;
}

const TEAMS: Record<string, string[]> = {
  Payments: ["Ledger", "Checkout v3", "Refund Automation"],
  Identity: ["Passkeys", "SSO Broker"],
  Search: ["Query Rewrite", "Vector Index"],
  "Data Platform": ["Lakehouse", "Event Bus"],
  Mobile: ["Offline Mode", "Push Pipeline"],
  Growth: ["Referral Program", "Pricing Experiments", "Churn Model"],
};
const TECHNOLOGIES = words(
  "Kafka PostgreSQL Redis Kubernetes Elasticsearch Snowflake Go Rust TypeScript Kotlin Swift Terraform",
);
const ROLES = [
  "Staff engineer",
  "Senior engineer",
  "Engineer",
  "Engineering manager",
  "Product manager",
  "Data scientist",
];
const CITIES = words("Berlin Lisbon Toronto Austin Singapore London Warsaw Nairobi");

/** The graph server-memory starts from: 48 people, 6 teams, 14 projects, 12 technologies. */
export function knowledgeGraph(): { entities: Entity[]; relations: Relation[] } {
  const random = createRandom("memory");
  const entities: Entity[] = [];
  const relations: Relation[] = [];
  const projects = Object.values(TEAMS).flat();
  for (const [team, owned] of Object.entries(TEAMS)) {
    entities.push({
      name: team,
      entityType: "team",
      observations: [
        `Owns ${owned.join(", ")}`,
        `On-call rotation: ${random.pick(["weekly", "biweekly"])}`,
      ],
    });
    for (const project of owned) relations.push({ from: team, to: project, relationType: "owns" });
  }
  for (const project of projects) {
    const uses = random.sample(TECHNOLOGIES, random.int(2, 4));
    if (project === "Ledger" && !uses.includes("Kafka")) uses.push("Kafka");
    entities.push({
      name: project,
      entityType: "project",
      observations: [
        `Status: ${random.pick(["active", "active", "planned", "maintenance"])}`,
        `Started ${random.pick(["Q1", "Q2", "Q3", "Q4"])} ${random.int(2023, 2025)}`,
      ],
    });
    for (const tech of uses) relations.push({ from: project, to: tech, relationType: "uses" });
  }
  for (const tech of TECHNOLOGIES) {
    entities.push({
      name: tech,
      entityType: "technology",
      observations: [
        `Adopted ${random.int(2016, 2024)}`,
        `Tier: ${random.pick(["core", "core", "experimental"])}`,
      ],
    });
  }
  const teams = Object.keys(TEAMS);
  personNames(random, 48).forEach((person, index) => {
    const team = teams[index % teams.length] as string;
    const own = TEAMS[team] ?? [];
    entities.push({
      name: person,
      entityType: "person",
      observations: [
        random.pick(ROLES),
        `Based in ${random.pick(CITIES)}`,
        `Joined ${random.int(2015, 2025)}`,
      ],
    });
    relations.push({ from: person, to: team, relationType: "member_of" });
    const worksOn = new Set([random.pick(own)]);
    if (random.chance(0.35)) worksOn.add(random.pick(projects));
    for (const project of worksOn)
      relations.push({ from: person, to: project, relationType: "works_on" });
    if (random.chance(0.3))
      relations.push({ from: person, to: random.pick(TECHNOLOGIES), relationType: "expert_in" });
  });
  return { entities, relations };
}

export async function writeKnowledgeGraph(file: string): Promise<void> {
  const { entities, relations } = knowledgeGraph();
  const lines = [
    ...entities.map((e) => JSON.stringify({ type: "entity", ...e })),
    ...relations.map((r) => JSON.stringify({ type: "relation", ...r })),
  ];
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, lines.join("\n"));
}

const SERVICES = words(
  "payments ledger checkout notifications search identity billing-gateway invoicing fraud reporting webhooks admin-console",
);
/** Services still calling the payment provider's deprecated endpoint, and how often. */
const DEPRECATED_CALLERS: Record<string, number> = {
  checkout: 3,
  "billing-gateway": 2,
  invoicing: 1,
  "admin-console": 1,
};
const ENDPOINT = "/v1/charges";

/** Writes the repository under `root`; returns the relative paths of its files. */
export async function writeProjectTree(root: string): Promise<string[]> {
  const random = createRandom("filesystem");
  const files = new Map<string, string>();
  files.set(
    "README.md",
    `# Acme platform\n\nThe services behind checkout, billing and the admin console. Each service lives in \`services/<name>\` with its README and its \`config.yaml\`; runbooks, incident reviews and architecture decisions are under \`docs/\`.\n\n## Getting started\n\n1. Install the toolchain with \`make bootstrap\`.\n2. Start the dependencies with \`docker compose up -d postgres redis kafka\`.\n3. Run one service with \`make run SERVICE=checkout\`.\n\n## Payment provider\n\nAll card payments go through the provider's Payment Intents API (\`/v2/payment_intents\`). The legacy Charges API is deprecated and is switched off on 2026-03-31; see ADR 0004.\n`,
  );
  files.set(
    "CONTRIBUTING.md",
    "# Contributing\n\nOpen a pull request against `main`. Every change needs a green CI run and one review from the owning team (see CODEOWNERS). Keep commits small and write the why in the message.\n\n## Releases\n\nServices deploy continuously from `main`; a release train cuts a tag every Tuesday for the mobile clients.\n",
  );
  for (const service of SERVICES) {
    const calls = DEPRECATED_CALLERS[service] ?? 0;
    const owner = random.pick(["payments", "platform", "growth", "identity"]);
    const port = 8_000 + SERVICES.indexOf(service) * 10;
    const legacy =
      calls > 0
        ? `\n## Payment provider\n\nCharges are still created with \`POST ${ENDPOINT}\` and refunded with \`POST ${ENDPOINT}/{id}/refunds\`.${calls > 2 ? ` Disputes are read from \`GET ${ENDPOINT}/{id}\`.` : ""} Migration to Payment Intents is tracked in PAY-${random.int(100, 999)}.\n`
        : "";
    files.set(
      `services/${service}/README.md`,
      `# ${service}\n\nOwned by the ${owner} team. Listens on port ${port} and exposes \`/healthz\` and \`/metrics\`.\n\n## Dependencies\n\n- PostgreSQL (schema \`${service.replace("-", "_")}\`)\n- Redis for idempotency keys (24 h TTL)\n${random.chance(0.5) ? "- Kafka topic `payments.events` (consumer group of the same name)\n" : ""}\n## Operations\n\nDashboards: Grafana folder \`${service}\`. Alerts page the ${owner} on-call when the error rate stays above ${random.int(1, 5)}% for 5 minutes.\n${legacy}`,
    );
    files.set(
      `services/${service}/config.yaml`,
      `service: ${service}\nport: ${port}\nreplicas: ${random.int(2, 6)}\ndatabase:\n  pool_size: ${random.int(5, 40)}\n  statement_timeout_ms: ${random.int(2, 10) * 1000}\nredis:\n  url: redis://redis.internal:6379/${random.int(0, 9)}\n${calls > 1 ? `provider:\n  charges_url: https://api.payments.example${ENDPOINT}\n  timeout_ms: 8000\n` : "provider:\n  intents_url: https://api.payments.example/v2/payment_intents\n  timeout_ms: 8000\n"}`,
    );
  }
  const runbooks = words(
    "failover-postgres rotate-secrets replay-webhooks drain-node scale-kafka refund-by-hand restore-backup flush-cdn block-fraud-ring reindex-search",
  );
  for (const name of runbooks) {
    const mentions = name === "refund-by-hand" ? 2 : 0;
    files.set(
      `docs/runbooks/${name}.md`,
      `# Runbook: ${name.replaceAll("-", " ")}\n\nWhen to use it: an alert links here, or the on-call lead asks for it.\n\n## Steps\n\n1. Announce in #incidents that you are starting this runbook.\n2. Check the service dashboards for the current error rate and saturation.\n3. ${random.pick(["Pause the consumers", "Put the service in maintenance mode", "Scale the deployment to zero"])} before changing anything.\n4. ${mentions > 0 ? `Issue the refund with \`POST ${ENDPOINT}/{id}/refunds\` using the admin key; the newer refunds endpoint does not yet accept legacy charge ids (\`ch_…\` from \`${ENDPOINT}\`).` : "Apply the change and watch the dashboards for ten minutes."}\n5. Write what you did in the incident channel.\n\n## Rollback\n\nRevert the last step and page the owning team.\n`,
    );
  }
  for (let i = 0; i < 10; i++) {
    const day = `2025-${String(2 + i).padStart(2, "0")}-${String(random.int(1, 28)).padStart(2, "0")}`;
    const service = random.pick(SERVICES);
    const mentions = i === 3 || i === 7 ? 1 : 0;
    files.set(
      `docs/incidents/${day}-${service}.md`,
      `# Incident review: ${service}, ${day}\n\nSeverity: SEV-${random.int(1, 3)}. Duration: ${random.int(12, 180)} minutes.\n\n## What happened\n\n${service} returned errors for ${random.int(2, 40)}% of requests after a ${random.pick(["config change", "deploy", "database failover", "certificate expiry"])}.${mentions > 0 ? ` Retries against the provider's \`${ENDPOINT}\` endpoint were throttled, which delayed recovery.` : ""}\n\n## Follow-ups\n\n- Add an alert on ${random.pick(["queue depth", "p99 latency", "error budget burn"])}.\n- Document the manual recovery in a runbook.\n`,
    );
  }
  const adrs = [
    "use-postgres-for-ledgers",
    "idempotency-keys",
    "kafka-for-events",
    "migrate-to-payment-intents",
    "feature-flags",
    "one-repo",
  ];
  adrs.forEach((title, index) => {
    const body =
      title === "migrate-to-payment-intents"
        ? `The provider deprecates \`${ENDPOINT}\` on 2026-03-31. Every service moves to \`/v2/payment_intents\`; until then, \`${ENDPOINT}\` calls are allowed only behind the \`legacy_charges\` flag.`
        : `We adopt this to keep ${random.pick(["operations simple", "writes safe to retry", "services decoupled", "releases small"])}.`;
    files.set(
      `docs/adr/${String(index + 1).padStart(4, "0")}-${title}.md`,
      `# ADR ${index + 1}: ${title.replaceAll("-", " ")}\n\nStatus: accepted\n\n## Context\n\n${body}\n\n## Consequences\n\nOwners update their services within two quarters.\n`,
    );
  });
  for (const [path, text] of files) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return [...files.keys()];
}
