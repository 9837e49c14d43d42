// The customer accounts the CRM and the helpdesk servers share: the CRM's accounts are the
// helpdesk's organizations (an account's `support_org_id`), as when a CRM is synced to a helpdesk.
import { companyNames, createRandom, personNames, slug } from "../random.ts";

export interface Account {
  id: string;
  name: string;
  domain: string;
  industry: string;
  tier: "enterprise" | "mid-market" | "smb";
  arr: number;
  employees: number;
  owner: { id: string; name: string; email: string };
  health_score: number;
  renewal_date: string;
  lifecycle_stage: "customer" | "expansion" | "at-risk";
  billing_address: { city: string; country: string };
  support_org_id: number;
  created_at: string;
  updated_at: string;
  url: string;
}

const INDUSTRIES = [
  "Software",
  "Healthcare",
  "Logistics",
  "Financial Services",
  "Retail",
  "Manufacturing",
  "Media",
  "Energy",
  "Education",
] as const;
const CITIES = [
  ["Berlin", "Germany"],
  ["London", "United Kingdom"],
  ["Austin", "United States"],
  ["Toronto", "Canada"],
  ["São Paulo", "Brazil"],
  ["Singapore", "Singapore"],
  ["Sydney", "Australia"],
  ["Paris", "France"],
  ["Chicago", "United States"],
  ["Amsterdam", "Netherlands"],
] as const;

const random = createRandom("accounts");

export const OWNERS = personNames(random, 10).map((name, index) => ({
  id: `usr_${(7_301 + index * 13).toString(36)}`,
  name,
  email: `${slug(name).replace("-", ".")}@acme.example`,
}));

export const ACCOUNTS: Account[] = companyNames(random, 240).map((name, index) => {
  const tier = index % 4 === 0 ? "enterprise" : index % 4 === 1 ? "mid-market" : "smb";
  const [city, country] = random.pick(CITIES);
  const arr =
    tier === "enterprise"
      ? random.int(120, 900) * 1_000
      : tier === "mid-market"
        ? random.int(30, 120) * 1_000
        : random.int(3, 30) * 1_000;
  const health = random.int(22, 98);
  const id = `ACC-${1_001 + index}`;
  const created = `20${random.int(19, 24)}-${pad(random.int(1, 12))}-${pad(random.int(1, 28))}`;
  return {
    id,
    name,
    domain: `${slug(name).replaceAll("-", "")}.example`,
    industry: random.pick(INDUSTRIES),
    tier,
    arr,
    employees:
      tier === "enterprise"
        ? random.int(2_000, 40_000)
        : tier === "mid-market"
          ? random.int(200, 2_000)
          : random.int(10, 200),
    owner: random.pick(OWNERS),
    health_score: health,
    renewal_date: `2026-${pad(random.int(1, 12))}-${pad(random.int(1, 28))}`,
    lifecycle_stage: health < 40 ? "at-risk" : random.chance(0.2) ? "expansion" : "customer",
    billing_address: { city, country },
    support_org_id: 360_001_000 + index * 7,
    created_at: `${created}T${pad(random.int(8, 18))}:${pad(random.int(0, 59))}:00Z`,
    updated_at: `2026-01-${pad(random.int(2, 14))}T${pad(random.int(8, 18))}:${pad(random.int(0, 59))}:00Z`,
    url: `https://crm.acme.example/accounts/${id}`,
  };
});

function pad(n: number): string {
  return String(n).padStart(2, "0");
}
