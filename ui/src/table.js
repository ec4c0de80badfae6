// A virtualized table: only the rows in view exist in the DOM, so 10,000 runs scroll smoothly.
// columns: [{key, label, width, get(i) -> value, render?(i) -> Node|string, sort?(i) -> comparable}]
import { h } from "./util.js";

const ROW_HEIGHT = 28;

export class VirtualTable {
  constructor(el, { columns, rows = [], height = 560, onSort = null }) {
    Object.assign(this, { el, columns, rows, onSort });
    this.sortKey = null;
    this.sortDir = 1;
    this.head = h("div", { class: "vt-head" });
    this.spacer = h("div", { class: "vt-spacer" });
    this.body = h("div", { class: "vt-rows" });
    // The header scrolls sideways with the rows and sticks to the top when they scroll down.
    this.scroller = h("div", { class: "vt-scroll", style: { maxHeight: `${height}px` } }, this.head, this.spacer);
    this.spacer.append(this.body);
    el.classList.add("vt");
    el.replaceChildren(this.scroller);
    this.scroller.addEventListener("scroll", () => this.paint(), { passive: true });
    this.renderHead();
    this.setRows(rows);
  }

  setColumns(columns) {
    this.columns = columns;
    this.renderHead();
    this.paint(true);
  }

  // rows: an array of row indices into the caller's columnar data, in display order.
  setRows(rows) {
    this.rows = rows;
    this.spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
    this.paint(true);
  }

  template() {
    return this.columns.map((c) => `${c.width ?? 120}px`).join(" ");
  }

  renderHead() {
    this.head.style.gridTemplateColumns = this.template();
    this.head.replaceChildren(...this.columns.map((c) => h("div", {
      class: `vt-cell vt-th${c.numeric ? " num" : ""}${c.sort === false ? "" : " sortable"}`, title: c.title ?? c.label,
      onclick: c.sort === false ? null : () => this.sortBy(c.key),
    }, c.label, this.sortKey === c.key ? (this.sortDir > 0 ? " ▲" : " ▼") : "")));
    this.width = this.columns.reduce((a, c) => a + (c.width ?? 120), 0);
    this.head.style.width = `${this.width}px`;
    this.spacer.style.width = `${this.width}px`;
  }

  sortBy(key, dir) {
    this.sortDir = dir ?? (this.sortKey === key ? -this.sortDir : 1);
    this.sortKey = key;
    this.renderHead();
    this.onSort?.(key, this.sortDir);
  }

  paint(force = false) {
    const top = Math.max(0, this.scroller.scrollTop - this.head.offsetHeight);
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - 10);
    const last = Math.min(this.rows.length, Math.ceil((top + (this.scroller.clientHeight || 560)) / ROW_HEIGHT) + 10);
    if (!force && first === this.first && last === this.last) return;
    this.first = first;
    this.last = last;
    const template = this.template();
    const out = [];
    for (let pos = first; pos < last; pos += 1) {
      const i = this.rows[pos];
      const row = h("div", { class: `vt-row${pos % 2 ? " odd" : ""}`, style: { top: `${pos * ROW_HEIGHT}px`,
                                                                                  gridTemplateColumns: template } });
      for (const c of this.columns) {
        const value = c.render ? c.render(i) : c.get(i);
        row.append(h("div", { class: `vt-cell${c.numeric ? " num" : ""}`, title: c.render ? null : value ?? "" }, value ?? ""));
      }
      out.push(row);
    }
    this.body.replaceChildren(...out);
  }
}

// Sorts row indices by a column's value: numbers numerically, text naturally, empty cells last.
// A column width that shows its whole header (12.5px bold: about 7.5px a character, plus padding and
// the sort arrow), at least \`least\` and at most 320px; a longer header ends in an ellipsis (its title has it whole).
export function headerWidth(label, least) {
  return Math.min(320, Math.max(least, Math.ceil(label.length * 7.5) + 34));
}

export function sortRows(rows, get, dir) {
  const collator = new Intl.Collator(undefined, { numeric: true });
  const keyed = rows.map((i) => [i, get(i)]);
  keyed.sort(([, a], [, b]) => {
    const ea = a === null || a === undefined || a === "" || (typeof a === "number" && Number.isNaN(a));
    const eb = b === null || b === undefined || b === "" || (typeof b === "number" && Number.isNaN(b));
    if (ea || eb) return ea === eb ? 0 : ea ? 1 : -1;
    if (typeof a === "number" && typeof b === "number") return (a - b) * dir;
    return collator.compare(String(a), String(b)) * dir;
  });
  return keyed.map(([i]) => i);
}
