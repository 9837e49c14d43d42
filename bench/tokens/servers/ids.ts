/** The sales workbook's ID: the sheets server serves it, the spreadsheet workflow's task names it. */
export const SALES_SPREADSHEET_ID = "1vQ7rXk2Lm9TzP4sYc8NwB3dHfJ6gA0eUoRiEq5tKyZ";
