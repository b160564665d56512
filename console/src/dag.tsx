// A task DAG laid out by dagre (ranks left to right) and drawn as SVG.
import dagre from "@dagrejs/dagre";
import { useMemo } from "preact/hooks";
import type { TaskDef } from "./api";

const NODE_W = 150;
const NODE_H = 44;

interface Laid {
  width: number;
  height: number;
  nodes: { name: string; plugin: string; x: number; y: number }[];
  edges: { from: string; to: string; points: { x: number; y: number }[] }[];
}

function layout(tasks: TaskDef[]): Laid {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 56, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const t of tasks) g.setNode(t.name, { width: NODE_W, height: NODE_H });
  for (const t of tasks) for (const d of t.depends_on ?? []) g.setEdge(d, t.name);
  dagre.layout(g);
  const graph = g.graph() as { width?: number; height?: number };
  return {
    width: Math.ceil(graph.width ?? NODE_W),
    height: Math.ceil(graph.height ?? NODE_H),
    nodes: tasks.map((t) => {
      const n = g.node(t.name) as { x: number; y: number };
      return { name: t.name, plugin: t.plugin, x: n.x, y: n.y };
    }),
    edges: g.edges().map((e) => ({
      from: e.v,
      to: e.w,
      points: (g.edge(e) as { points: { x: number; y: number }[] }).points,
    })),
  };
}

/** `states` colours each task by its state in one run, if given. */
export function Dag({ tasks, states }: { tasks: TaskDef[]; states?: Record<string, string> }) {
  const laid = useMemo(() => layout(tasks), [tasks]);
  return (
    <div class="dag-wrap">
      <svg
        class="dag"
        role="img"
        aria-label={`Task graph: ${laid.edges.map((e) => `${e.from} → ${e.to}`).join(", ") || tasks.map((t) => t.name).join(", ")}`}
        width={laid.width}
        height={laid.height}
        viewBox={`0 0 ${laid.width} ${laid.height}`}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" class="dag-arrow" />
          </marker>
        </defs>
        {laid.edges.map((e) => (
          <polyline
            key={`${e.from}->${e.to}`}
            class="dag-edge"
            points={e.points.map((p) => `${p.x},${p.y}`).join(" ")}
            marker-end="url(#arrow)"
          />
        ))}
        {laid.nodes.map((n) => (
          <g key={n.name} class={`dag-node s-${states?.[n.name] ?? "none"}`} data-task={n.name}>
            <rect x={n.x - NODE_W / 2} y={n.y - NODE_H / 2} width={NODE_W} height={NODE_H} rx={6} />
            <text x={n.x} y={n.y - 3} text-anchor="middle" class="dag-name">
              {n.name}
            </text>
            <text x={n.x} y={n.y + 13} text-anchor="middle" class="dag-plugin">
              {n.plugin}
            </text>
          </g>
        ))}
      </svg>
    </div>
  );
}
