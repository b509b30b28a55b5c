// Agora's dashboard page: hand-written, no build step, no third-party code.
//
// The token is asked for once and kept in sessionStorage (this tab only). The figures come
// from the REST API; live changes from GET /v1/dashboard/stream, read with fetch() so the
// token travels in the Authorization header (EventSource cannot send one), never in a URL.
"use strict";

const TOKEN_KEY = "agora.token";
const ORDERS_SHOWN = 10;
const RECONNECT_MS = 2000;
// The orders read model has no live event of its own: besides every sale event, the list
// is re-read this often (an order placed or shipped changes no sales figure at once).
const ORDERS_REFRESH_MS = 5000;

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY);
let stream = null;
let ordersTimer = null;

function money(cents) {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind || ""}`;
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  if (response.status === 401 || response.status === 403) {
    signOut(response.status === 401 ? "the token was refused" : "this token may not see dashboards");
    throw new Error(`HTTP ${response.status}`);
  }
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${path}`);
  return response.json();
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderSales(sales) {
  const buckets = sales.buckets;
  const sum = (field) => buckets.reduce((total, b) => total + b[field], 0);
  const revenue = sum("revenue_cents");
  $("revenue-total").textContent = money(revenue);
  $("revenue-total").dataset.cents = String(revenue);
  $("orders-paid-total").textContent = String(sum("orders_paid"));
  $("orders-placed-total").textContent = String(sum("orders_placed"));
  $("units-sold-total").textContent = String(sum("units_sold"));

  const svg = $("sales-chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const width = 960, height = 240, bottom = 20;
  const max = Math.max(1, ...buckets.map((b) => b.revenue_cents));
  const slot = width / Math.max(1, buckets.length);
  const axis = document.createElementNS(ns, "line");
  Object.entries({ x1: 0, x2: width, y1: height - bottom, y2: height - bottom, class: "axis" })
    .forEach(([k, v]) => axis.setAttribute(k, v));
  svg.appendChild(axis);
  buckets.forEach((bucket, i) => {
    const barHeight = Math.max(0, (bucket.revenue_cents / max) * (height - bottom - 10));
    const bar = document.createElementNS(ns, "rect");
    Object.entries({
      x: i * slot + 2, y: height - bottom - barHeight, width: Math.max(1, slot - 4),
      height: barHeight, class: "bar",
    }).forEach(([k, v]) => bar.setAttribute(k, v));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${bucket.start}: ${money(bucket.revenue_cents)}, ${bucket.orders_paid} paid`;
    bar.appendChild(title);
    svg.appendChild(bar);
    if (i % 3 === 0) {
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", i * slot + 2);
      label.setAttribute("y", height - 5);
      label.textContent = bucket.start.slice(11, 16);
      svg.appendChild(label);
    }
  });
}

function renderTopProducts(top) {
  const rows = top.items.map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.productId = item.product_id;
    tr.append(cell(item.sku), cell(item.name), cell(String(item.units_sold), "num"),
      cell(money(item.revenue_cents), "num"));
    return tr;
  });
  $("top-products").tBodies[0].replaceChildren(...rows);
}

function renderOrders(page) {
  const rows = page.items.map((order) => {
    const tr = document.createElement("tr");
    tr.dataset.orderId = order.id;
    tr.append(cell(order.placed_at.replace("T", " ").slice(0, 19)), cell(order.customer_id),
      cell(order.status), cell(`${money(order.total_cents)} ${order.currency}`, "num"));
    return tr;
  });
  $("latest-orders").tBodies[0].replaceChildren(...rows);
}

async function refreshOrders() {
  renderOrders(await api(`/v1/orders?limit=${ORDERS_SHOWN}`));
}

async function loadAll() {
  const [sales, top] = await Promise.all([
    api("/v1/dashboard/sales"), api("/v1/dashboard/top-products"), refreshOrders(),
  ]);
  renderSales(sales);
  renderTopProducts(top);
}

// Reads server-sent events from a fetch() body: "event:" and "data:" lines, blank line ends.
async function follow(signal) {
  const response = await fetch("/v1/dashboard/stream", {
    headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" }, signal,
  });
  if (!response.ok) throw new Error(`stream: HTTP ${response.status}`);
  setStatus("live", "live");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the stream ended");
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (!data) continue;
      const body = JSON.parse(data);
      if (event === "sales") renderSales(body);
      if (event === "top_products") renderTopProducts(body);
      // The orders list has no event of its own: a sale is when it changes.
      refreshOrders().catch(() => {});
    }
  }
}

async function live() {
  const controller = new AbortController();
  stream = controller;
  while (stream === controller) {
    try {
      await follow(controller.signal);
    } catch (error) {
      if (stream !== controller) return;
      setStatus(`reconnecting (${error.message})`, "down");
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
      loadAll().catch(() => {});
    }
  }
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  if (stream) stream.abort();
  stream = null;
  clearInterval(ordersTimer);
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").hidden = !reason;
  $("sign-in-error").textContent = reason || "";
  setStatus("not connected");
}

async function open() {
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  setStatus("loading");
  try {
    await loadAll();
  } catch (error) {
    if (token) setStatus(error.message, "down");
    return;
  }
  clearInterval(ordersTimer);
  ordersTimer = setInterval(() => refreshOrders().catch(() => {}), ORDERS_REFRESH_MS);
  live();
}

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  open();
});
$("sign-out").addEventListener("click", () => signOut());

if (token) open(); else signOut();
