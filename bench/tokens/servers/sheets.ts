// A spreadsheet server in the shape of the Google Sheets API: one workbook of FY2025 sales
// orders (10,000 rows), its reps and its products, generated from a fixed seed.
//
//   node bench/tokens/servers/sheets.ts
import { companyNames, createRandom, personNames, words } from "../random.ts";
import { SALES_SPREADSHEET_ID } from "./ids.ts";
import { type Args, intArg, serve, stringArg, ToolInputError } from "./serve.ts";

type Cell = string | number | boolean;
interface Sheet {
  id: number;
  title: string;
  rows: Cell[][];
}

const random = createRandom("sheets");
const REGIONS = { NA: 38, EMEA: 30, APAC: 22, LATAM: 10 } as const;
const STATUSES = {
  Delivered: 70,
  Shipped: 12,
  Processing: 6,
  Cancelled: 5,
  Returned: 4,
  "On Hold": 3,
} as const;
const CATEGORIES: Record<string, string[]> = {
  Servers: words("Atlas-S1 Atlas-S2 Atlas-X2 Atlas-X4 Titan-R8"),
  Storage: words("Vault-100 Vault-400 Vault-Flash Archive-Tape"),
  Networking: words("Mesh-Switch-24 Mesh-Switch-48 Edge-Router Core-Router Wave-AP"),
  Software: words("Ops-Suite Backup-Pro Sentinel-EDR Insight-BI Fleet-MDM"),
  Services: words("Install-Onsite Support-Gold Support-Platinum Training-Day Migration-Pack"),
  Accessories: words("Rack-Kit Power-Unit Cable-Bundle Optic-SFP UPS-1500 KVM-Console"),
};
const PRICE_RANGE: Record<string, [number, number]> = {
  Servers: [4_000, 18_000],
  Storage: [2_500, 22_000],
  Networking: [600, 9_000],
  Software: [300, 2_400],
  Services: [900, 6_000],
  Accessories: [25, 900],
};

const products = Object.entries(CATEGORIES).flatMap(([category, names]) =>
  names.map((name, index) => {
    const [low, high] = PRICE_RANGE[category] ?? [100, 1_000];
    const sku = `${category.slice(0, 3).toUpperCase()}-${String(101 + index)}`;
    return { sku, name: name.replaceAll("-", " "), category, price: random.money(low, high) };
  }),
);
const reps = Object.keys(REGIONS).flatMap((region) =>
  personNames(random, 10).map((name) => ({ name, region, quota: random.int(18, 60) * 50_000 })),
);
const customers = companyNames(random, 320);

function orderRows(): Cell[][] {
  const header = [
    "Order ID",
    "Order Date",
    "Region",
    "Sales Rep",
    "Customer",
    "Product",
    "Category",
    "Quantity",
    "Unit Price",
    "Total",
    "Status",
  ];
  const rows: Cell[][] = [header];
  const start = Date.UTC(2025, 0, 1);
  for (let i = 0; i < 10_000; i++) {
    const region = random.weighted(REGIONS);
    const rep = random.pick(reps.filter((r) => r.region === region));
    const product = random.pick(products);
    const bulk = product.category === "Accessories" || product.category === "Software";
    const quantity = bulk ? random.int(1, 60) : random.int(1, 8);
    const day = new Date(start + Math.floor((i / 10_000) * 365) * 86_400_000);
    rows.push([
      `SO-${100_001 + i}`,
      day.toISOString().slice(0, 10),
      region,
      rep.name,
      random.pick(customers),
      product.name,
      product.category,
      quantity,
      product.price,
      Math.round(quantity * product.price * 100) / 100,
      random.weighted(STATUSES),
    ]);
  }
  return rows;
}

const sheets: Sheet[] = [
  { id: 0, title: "Orders", rows: orderRows() },
  {
    id: 1_204_118_771,
    title: "Reps",
    rows: [["Rep", "Region", "Annual Quota"], ...reps.map((r) => [r.name, r.region, r.quota])],
  },
  {
    id: 1_877_305_412,
    title: "Products",
    rows: [
      ["SKU", "Product", "Category", "List Price"],
      ...products.map((p) => [p.sku, p.name, p.category, p.price]),
    ],
  },
];
const files = [
  { id: SALES_SPREADSHEET_ID, name: "FY2025 Sales Orders", modified_time: "2026-01-06T09:12:44Z" },
  {
    id: "1kD3mR8vQx0PzL5wNc2YbT7sHf9gJ4aEoUiRe6tKyZq",
    name: "FY2026 Territory Plan",
    modified_time: "2026-01-09T16:40:02Z",
  },
  {
    id: "1pW5nS2cVb7XzK0mLq9RtY4dGf3hJ8aEoUiNe1sKyZx",
    name: "Commission Calculator",
    modified_time: "2025-12-18T11:05:37Z",
  },
].map((file) => ({
  ...file,
  owner: "revops@acme.example",
  mime_type: "application/vnd.google-apps.spreadsheet",
}));

/** `Sheet!A1:K10`, `Sheet`, `A:C` or `'My sheet'!B2`: the sheet and a 0-based cell rectangle. */
function parseRange(range: string): {
  sheet: Sheet;
  top: number;
  left: number;
  bottom: number;
  right: number;
} {
  const text = range.trim();
  const bang = text.lastIndexOf("!");
  const title = bang < 0 ? undefined : text.slice(0, bang).replace(/^'(.*)'$/, "$1");
  const cells = bang < 0 ? text : text.slice(bang + 1);
  const whole = sheets.find((s) => s.title === text.replace(/^'(.*)'$/, "$1"));
  const match = whole ? [] : /^(?:([A-Z]+)(\d+)?(?::([A-Z]+)(\d+)?)?)?$/.exec(cells);
  const sheet = whole ?? (title === undefined ? sheets[0] : sheets.find((s) => s.title === title));
  if (!match || !sheet) throw new ToolInputError(`Unable to parse range: ${range}`);
  const column = (letters: string | undefined, fallback: number) =>
    letters === undefined
      ? fallback
      : [...letters].reduce((n, c) => n * 26 + c.charCodeAt(0) - 64, 0) - 1;
  const width = Math.max(...sheet.rows.map((row) => row.length));
  const left = column(match[1], 0);
  const top = match[2] === undefined ? 0 : Number(match[2]) - 1;
  const right =
    match[3] === undefined
      ? match[1] === undefined
        ? width - 1
        : left
      : column(match[3], width - 1);
  const bottom =
    match[4] !== undefined
      ? Number(match[4]) - 1
      : match[3] === undefined && match[2] !== undefined
        ? top
        : Number.MAX_SAFE_INTEGER;
  return { sheet, top, left, bottom, right };
}

function a1(sheet: Sheet, top: number, left: number, bottom: number, right: number): string {
  const letters = (n: number): string =>
    (n < 26 ? "" : letters(Math.floor(n / 26) - 1)) + String.fromCharCode(65 + (n % 26));
  return `${sheet.title}!${letters(left)}${top + 1}:${letters(right)}${bottom + 1}`;
}

function read(range: string, majorDimension: string) {
  const { sheet, top, left, bottom, right } = parseRange(range);
  const last = Math.min(bottom, sheet.rows.length - 1);
  const rows = sheet.rows.slice(top, last + 1).map((row) => row.slice(left, right + 1));
  const values =
    majorDimension === "COLUMNS"
      ? Array.from({ length: right - left + 1 }, (_, c) => rows.map((row) => row[c] ?? ""))
      : rows;
  return {
    range: a1(sheet, top, left, Math.max(last, top), right),
    major_dimension: majorDimension,
    values,
  };
}

function write(range: string, values: unknown, append: boolean) {
  if (!Array.isArray(values) || !values.every((row) => Array.isArray(row)))
    throw new ToolInputError('"values" must be an array of rows (arrays of cells)');
  const target = parseRange(range);
  const top = append ? target.sheet.rows.length : target.top;
  values.forEach((row: Cell[], r) => {
    const line = target.sheet.rows[top + r] ?? [];
    row.forEach((cell, c) => {
      line[target.left + c] = cell;
    });
    target.sheet.rows[top + r] = line;
  });
  const width = Math.max(0, ...values.map((row: Cell[]) => row.length));
  const updatedRange = a1(
    target.sheet,
    top,
    target.left,
    top + values.length - 1,
    target.left + width - 1,
  );
  return {
    spreadsheet_id: SALES_SPREADSHEET_ID,
    updated_range: updatedRange,
    updated_rows: values.length,
    updated_columns: width,
    updated_cells: values.reduce((n: number, row: Cell[]) => n + row.length, 0),
  };
}

function spreadsheet(args: Args): Sheet[] {
  const id = stringArg(args, "spreadsheet_id");
  if (id !== SALES_SPREADSHEET_ID)
    throw new ToolInputError(`Requested entity was not found: spreadsheet ${id}`);
  return sheets;
}

const spreadsheetId = {
  type: "string",
  description: "The spreadsheet's ID (from its URL or list_spreadsheets).",
} as const;
const a1Range = {
  type: "string",
  description: "A1 notation, e.g. 'Orders!A1:K500', 'Orders' (the whole sheet) or 'Orders!A:C'.",
} as const;
const cell = { type: ["string", "number", "boolean"] } as const;

await serve("sheets", [
  {
    tool: {
      name: "list_spreadsheets",
      description: "List the spreadsheets in the user's Drive, most recently modified first.",
      inputSchema: {
        type: "object",
        properties: {
          query: {
            type: "string",
            description: "Only spreadsheets whose name contains this text.",
          },
          page_size: { type: "integer", minimum: 1, maximum: 100, default: 20 },
        },
      },
    },
    run: (args) => {
      const query = (args.query === undefined ? "" : stringArg(args, "query")).toLowerCase();
      const found = files.filter((file) => file.name.toLowerCase().includes(query));
      return { files: found.slice(0, intArg(args, "page_size", 20, 100)) };
    },
  },
  {
    tool: {
      name: "get_spreadsheet",
      description: "Get a spreadsheet's properties and its sheets (tabs), with each sheet's size.",
      inputSchema: {
        type: "object",
        properties: { spreadsheet_id: spreadsheetId },
        required: ["spreadsheet_id"],
      },
      outputSchema: {
        type: "object",
        properties: {
          spreadsheet_id: { type: "string" },
          title: { type: "string" },
          url: { type: "string" },
          time_zone: { type: "string" },
          sheets: {
            type: "array",
            items: {
              type: "object",
              properties: {
                sheet_id: { type: "integer" },
                title: { type: "string" },
                row_count: { type: "integer" },
                column_count: { type: "integer" },
                frozen_row_count: { type: "integer" },
              },
              required: ["sheet_id", "title", "row_count", "column_count"],
            },
          },
        },
        required: ["spreadsheet_id", "title", "sheets"],
      },
    },
    run: (args) => ({
      spreadsheet_id: SALES_SPREADSHEET_ID,
      title: "FY2025 Sales Orders",
      url: `https://docs.google.com/spreadsheets/d/${SALES_SPREADSHEET_ID}/edit`,
      time_zone: "America/New_York",
      sheets: spreadsheet(args).map((sheet) => ({
        sheet_id: sheet.id,
        title: sheet.title,
        row_count: sheet.rows.length,
        column_count: Math.max(...sheet.rows.map((row) => row.length)),
        frozen_row_count: 1,
      })),
    }),
  },
  {
    tool: {
      name: "get_values",
      description:
        "Read a range of cells. Returns the rows (or columns) of values; the first row of a sheet is its header. Empty trailing rows and columns are omitted.",
      inputSchema: {
        type: "object",
        properties: {
          spreadsheet_id: spreadsheetId,
          range: a1Range,
          major_dimension: { type: "string", enum: ["ROWS", "COLUMNS"], default: "ROWS" },
        },
        required: ["spreadsheet_id", "range"],
      },
      outputSchema: {
        type: "object",
        properties: {
          range: { type: "string" },
          major_dimension: { type: "string", enum: ["ROWS", "COLUMNS"] },
          values: { type: "array", items: { type: "array", items: cell } },
        },
        required: ["range", "major_dimension", "values"],
      },
    },
    run: (args) => {
      spreadsheet(args);
      return read(stringArg(args, "range"), stringArg(args, "major_dimension", "ROWS"));
    },
  },
  {
    tool: {
      name: "batch_get_values",
      description: "Read several ranges of cells in one request.",
      inputSchema: {
        type: "object",
        properties: {
          spreadsheet_id: spreadsheetId,
          ranges: { type: "array", items: a1Range, minItems: 1 },
        },
        required: ["spreadsheet_id", "ranges"],
      },
    },
    run: (args) => {
      spreadsheet(args);
      if (!Array.isArray(args.ranges)) throw new ToolInputError('"ranges" must be an array');
      return { value_ranges: args.ranges.map((range) => read(String(range), "ROWS")) };
    },
  },
  {
    tool: {
      name: "update_values",
      description: "Write values into a range of cells, starting at its top-left cell.",
      inputSchema: {
        type: "object",
        properties: {
          spreadsheet_id: spreadsheetId,
          range: a1Range,
          values: {
            type: "array",
            items: { type: "array", items: cell },
            description: "Rows of cell values.",
          },
          value_input_option: {
            type: "string",
            enum: ["RAW", "USER_ENTERED"],
            default: "USER_ENTERED",
          },
        },
        required: ["spreadsheet_id", "range", "values"],
      },
    },
    run: (args) => {
      spreadsheet(args);
      return write(stringArg(args, "range"), args.values, false);
    },
  },
  {
    tool: {
      name: "append_values",
      description: "Append rows after the last row of a sheet's data.",
      inputSchema: {
        type: "object",
        properties: {
          spreadsheet_id: spreadsheetId,
          range: a1Range,
          values: { type: "array", items: { type: "array", items: cell } },
        },
        required: ["spreadsheet_id", "range", "values"],
      },
    },
    run: (args) => {
      spreadsheet(args);
      return write(stringArg(args, "range"), args.values, true);
    },
  },
  {
    tool: {
      name: "clear_values",
      description: "Clear the values of a range of cells (formatting is kept).",
      inputSchema: {
        type: "object",
        properties: { spreadsheet_id: spreadsheetId, range: a1Range },
        required: ["spreadsheet_id", "range"],
      },
    },
    run: (args) => {
      spreadsheet(args);
      const { sheet, top, left, bottom, right } = parseRange(stringArg(args, "range"));
      for (let r = top; r <= Math.min(bottom, sheet.rows.length - 1); r++)
        for (let c = left; c <= right; c++) if (sheet.rows[r]) (sheet.rows[r] as Cell[])[c] = "";
      return {
        spreadsheet_id: SALES_SPREADSHEET_ID,
        cleared_range: a1(sheet, top, left, Math.min(bottom, sheet.rows.length - 1), right),
      };
    },
  },
]);
