// A Code Mode program: the body of an async function, with each MCP server as a global.
// It fans out over the cities in `input`, records what it learned in a knowledge graph on a
// second server, and returns only the summary: the intermediate results never reach the LLM.
const cities: string[] = input?.cities ?? ["New York", "Chicago", "Los Angeles"];

const reports = await Promise.all(
  cities.map(async (city) => {
    const weather = await everything.get_structured_content({ location: city });
    return { city, ...weather };
  }),
);

await memory.create_entities({
  entities: reports.map((report) => ({
    name: report.city,
    entityType: "city",
    observations: [`${report.temperature}°C and ${report.conditions.toLowerCase()}`],
  })),
});

const graph = await memory.open_nodes({ names: cities });
console.log(`recorded ${graph.entities.length} cities in the knowledge graph`);

const warmest = reports.reduce((a, b) => (b.temperature > a.temperature ? b : a));
return {
  warmest: warmest.city,
  averageTemperature: reports.reduce((sum, r) => sum + r.temperature, 0) / reports.length,
  observations: graph.entities.map((e: { name: string; observations: string[] }) => `${e.name}: ${e.observations.at(-1)}`),
};
