//! Shortest paths over the link-state records: the graph of two-way links and the
//! shortest-path tree from any root. Deterministic: equal records give equal trees on
//! every node (ties go to the parent that sorts first), which multicast relies on —
//! each node finds its children in the origin's tree by computing the same tree.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::id::NodeId;

/// The nodes and their two-way links, indexed densely in node-id order.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    nodes: Vec<NodeId>,
    index: HashMap<NodeId, usize>,
    adj: Vec<Vec<(usize, u32)>>,
}

/// A shortest-path tree: for every node its parent towards the root and its distance
/// (`None`: unreachable; the root has distance 0 and no parent).
#[derive(Debug)]
pub(crate) struct Tree {
    pub parent: Vec<Option<usize>>,
    pub dist: Vec<Option<u64>>,
    /// Reachable nodes in the order they were settled (the root first, every node after
    /// its parent).
    pub order: Vec<usize>,
}

impl Graph {
    /// Builds the graph from each node's advertised neighbours, given in node-id order
    /// (the router's database iterates so). A link counts only when both ends list each
    /// other (a one-way claim is a link still coming up or going down); its cost is the
    /// larger of the two claims, so both directions agree.
    pub fn build<'a>(
        records: impl IntoIterator<Item = (&'a NodeId, &'a [(NodeId, u32)])>,
    ) -> Graph {
        let recs: Vec<(&NodeId, &[(NodeId, u32)])> = records.into_iter().collect();
        debug_assert!(
            recs.windows(2).all(|w| w[0].0 < w[1].0),
            "records in id order"
        );
        let nodes: Vec<NodeId> = recs.iter().map(|(id, _)| (*id).clone()).collect();
        let index: HashMap<NodeId, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        // each node's claims by neighbour index, sorted, the cheapest of repeated claims
        let claims: Vec<Vec<(usize, u32)>> = recs
            .iter()
            .enumerate()
            .map(|(i, (_, ns))| {
                let mut c: Vec<(usize, u32)> = ns
                    .iter()
                    .filter_map(|(n, cost)| index.get(n).map(|&j| (j, (*cost).max(1))))
                    .filter(|(j, _)| *j != i)
                    .collect();
                c.sort_unstable();
                c.dedup_by_key(|(j, _)| *j);
                c
            })
            .collect();
        let adj = claims
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                ns.iter()
                    .filter_map(|&(j, ci)| {
                        let back = &claims[j];
                        let k = back.binary_search_by_key(&i, |(x, _)| *x).ok()?;
                        Some((j, ci.max(back[k].1)))
                    })
                    .collect()
            })
            .collect();
        Graph { nodes, index, adj }
    }

    /// The dense index of a node, if it has a record.
    pub fn index(&self, id: &NodeId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The node at a dense index.
    pub fn node(&self, i: usize) -> &NodeId {
        &self.nodes[i]
    }

    /// Number of nodes with a record.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Dijkstra from `root`.
    pub fn tree(&self, root: usize) -> Tree {
        let n = self.nodes.len();
        let mut parent: Vec<Option<usize>> = vec![None; n];
        let mut dist: Vec<Option<u64>> = vec![None; n];
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        let mut heap = BinaryHeap::new();
        dist[root] = Some(0);
        heap.push(Reverse((0u64, root)));
        while let Some(Reverse((d, u))) = heap.pop() {
            if done[u] || dist[u] != Some(d) {
                continue;
            }
            done[u] = true;
            order.push(u);
            for &(v, c) in &self.adj[u] {
                if done[v] {
                    continue;
                }
                let alt = d + u64::from(c);
                let better = match dist[v] {
                    None => true,
                    Some(dv) => alt < dv || (alt == dv && parent[v].is_some_and(|p| u < p)),
                };
                if better {
                    if dist[v] != Some(alt) {
                        heap.push(Reverse((alt, v)));
                    }
                    dist[v] = Some(alt);
                    parent[v] = Some(u);
                }
            }
        }
        Tree {
            parent,
            dist,
            order,
        }
    }
}

impl Tree {
    /// For every node reachable from the root, the root's neighbour its path starts with
    /// (`None` for the root and unreachable nodes).
    pub fn first_hops(&self, root: usize) -> Vec<Option<usize>> {
        let mut first = vec![None; self.parent.len()];
        for &v in &self.order {
            if let Some(p) = self.parent[v] {
                first[v] = if p == root { Some(v) } else { first[p] };
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn graph(links: &[(&str, &str, u32)]) -> Graph {
        let mut recs: BTreeMap<NodeId, Vec<(NodeId, u32)>> = BTreeMap::new();
        for (a, b, c) in links {
            recs.entry(id(a)).or_default().push((id(b), *c));
            recs.entry(id(b)).or_default().push((id(a), *c));
        }
        Graph::build(recs.iter().map(|(k, v)| (k, v.as_slice())))
    }

    #[test]
    fn the_cheap_path_wins_and_first_hops_follow_it() {
        // a square: a-b-d cheap, a-c-d expensive
        let g = graph(&[("a", "b", 1), ("b", "d", 1), ("a", "c", 5), ("c", "d", 5)]);
        let a = g.index(&id("a")).unwrap();
        let t = g.tree(a);
        let d = g.index(&id("d")).unwrap();
        assert_eq!(t.dist[d], Some(2));
        let first = t.first_hops(a);
        assert_eq!(first[d].map(|i| g.node(i).clone()), Some(id("b")));
        assert_eq!(
            first[g.index(&id("c")).unwrap()].map(|i| g.node(i).clone()),
            Some(id("c"))
        );
    }

    #[test]
    fn a_one_way_claim_is_no_link() {
        let mut recs: BTreeMap<NodeId, Vec<(NodeId, u32)>> = BTreeMap::new();
        recs.insert(id("a"), vec![(id("b"), 1)]);
        recs.insert(id("b"), vec![]);
        let g = Graph::build(recs.iter().map(|(k, v)| (k, v.as_slice())));
        let t = g.tree(g.index(&id("a")).unwrap());
        assert_eq!(t.dist[g.index(&id("b")).unwrap()], None);
    }

    #[test]
    fn ties_go_to_the_parent_that_sorts_first() {
        // a-b-d and a-c-d cost the same: d's parent is b on every node that computes it
        let g = graph(&[("a", "c", 1), ("c", "d", 1), ("a", "b", 1), ("b", "d", 1)]);
        let t = g.tree(g.index(&id("a")).unwrap());
        let d = g.index(&id("d")).unwrap();
        assert_eq!(t.parent[d].map(|p| g.node(p).clone()), Some(id("b")));
    }

    #[test]
    fn the_larger_claimed_cost_is_the_link_cost() {
        let mut recs: BTreeMap<NodeId, Vec<(NodeId, u32)>> = BTreeMap::new();
        recs.insert(id("a"), vec![(id("b"), 1)]);
        recs.insert(id("b"), vec![(id("a"), 7)]);
        let g = Graph::build(recs.iter().map(|(k, v)| (k, v.as_slice())));
        let t = g.tree(g.index(&id("a")).unwrap());
        assert_eq!(t.dist[g.index(&id("b")).unwrap()], Some(7));
    }
}
