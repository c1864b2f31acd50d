// The app page of the Clarion debug console: chart, channels, members,
// trigger form and live log. Plain JavaScript, no build step.

const body = document.body;
const base = body.dataset.base;
const appId = body.dataset.appId;
const api = `${base}/api/apps/${encodeURIComponent(appId)}`;

const POLL_MILLISECONDS = 2000;
const MAX_ROWS = 500; // log rows kept in the page; older rows are removed
const CHART_SECONDS = 600;
const SVG_NS = 'http://www.w3.org/2000/svg';

const KIND_LABELS = {
  connection_opened: 'connection opened',
  connection_closed: 'connection closed',
  subscribed: 'subscribed',
  unsubscribed: 'unsubscribed',
  api_event: 'API event',
  client_event: 'client event',
  webhook_sent: 'webhook sent',
  webhook_failed: 'webhook failed',
  error: 'error',
};

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: 'application/json' } });
  if (response.status === 401) {
    window.location.assign(`${base}/login`);
    throw new Error('Not logged in');
  }
  const payload = await response.json();
  if (!response.ok) throw new Error(payload.error || `HTTP ${response.status}`);
  return payload;
}

// Chart

function describeScope(stats) {
  const last = stats.samples[stats.samples.length - 1];
  if (stats.scope !== 'cluster') return 'this process';
  if (stats.cluster_error) return `this process only: Redis failed (${stats.cluster_error})`;
  const nodes = last ? last[4] : 1;
  return `whole cluster: ${nodes} server process${nodes === 1 ? '' : 'es'}`;
}

function drawChart(samples) {
  const svg = document.getElementById('chart');
  while (svg.lastChild && svg.lastChild.nodeName !== 'title') svg.removeChild(svg.lastChild);
  const width = 600;
  const height = 160;
  const top = 14;
  const now = samples.length ? samples[samples.length - 1][0] : Date.now() / 1000;
  let maximum = 1;
  for (const [, open, opened, events] of samples) {
    maximum = Math.max(maximum, open, opened, events);
  }
  // A young server's history fills the width: at least 1 minute, at most 10.
  const first = samples.length ? samples[0][0] : now;
  const span = Math.min(CHART_SECONDS, Math.max(60, now - first));
  const x = (time) => width - ((now - time) / span) * width;
  const y = (value) => height - (value / maximum) * (height - top);

  for (const fraction of [0.5, 1]) {
    const line = document.createElementNS(SVG_NS, 'line');
    line.setAttribute('class', 'grid-line');
    line.setAttribute('x1', '0');
    line.setAttribute('x2', String(width));
    line.setAttribute('y1', String(y(maximum * fraction)));
    line.setAttribute('y2', String(y(maximum * fraction)));
    svg.appendChild(line);
  }

  const label = document.createElementNS(SVG_NS, 'text');
  label.setAttribute('class', 'axis');
  label.setAttribute('x', '4');
  label.setAttribute('y', '12');
  label.textContent = `max ${maximum}`;
  svg.appendChild(label);

  [
    ['events', 3],
    ['opened', 2],
    ['open', 1],
  ].forEach(([name, column]) => {
    const points = samples.map((sample) => `${x(sample[0]).toFixed(1)},${y(sample[column]).toFixed(1)}`);
    const line = document.createElementNS(SVG_NS, 'polyline');
    line.setAttribute('class', name);
    line.setAttribute('points', points.join(' '));
    svg.appendChild(line);
  });

  const last = samples[samples.length - 1] || [now, 0, 0, 0];
  document.getElementById('open-count').textContent = String(last[1]);
  document.getElementById('opened-rate').textContent = String(last[2]);
  document.getElementById('event-rate').textContent = String(last[3]);
  document.getElementById('chart-title').textContent =
    `Open connections over the last ${Math.round(span / 60)} minute(s): now ${last[1]}, chart maximum ${maximum}`;
}

// Channels and members

let membersChannel = null;

function renderChannels(payload) {
  const rows = document.getElementById('channel-rows');
  rows.replaceChildren();
  for (const channel of payload.channels) {
    const row = element('tr');
    row.dataset.channel = channel.name;
    row.appendChild(element('td', channel.name, 'mono'));
    row.appendChild(element('td', channel.subscription_count, 'num'));
    const users = element('td', null, 'num');
    if (channel.kind === 'presence') {
      const button = element('button', `${channel.user_count ?? 0} members`, 'quiet');
      button.type = 'button';
      button.setAttribute('aria-controls', 'members');
      button.addEventListener('click', () => {
        membersChannel = channel.name;
        refreshMembers();
      });
      users.appendChild(button);
    }
    row.appendChild(users);
    rows.appendChild(row);
  }
  document.getElementById('channels-empty').hidden = payload.channels.length > 0;
  if (membersChannel && !payload.channels.some((c) => c.name === membersChannel)) {
    membersChannel = null;
    document.getElementById('members').hidden = true;
  }
}

async function refreshMembers() {
  if (!membersChannel) return;
  const query = new URLSearchParams({ channel: membersChannel });
  const payload = await getJson(`${api}/members?${query}`);
  const list = document.getElementById('member-list');
  list.replaceChildren();
  for (const member of payload.members) {
    const item = element('li');
    item.appendChild(element('strong', member.id));
    item.appendChild(element('pre', JSON.stringify(member.info, null, 2)));
    list.appendChild(item);
  }
  document.getElementById('members-title').textContent =
    `Members of ${payload.channel} (${payload.members.length})`;
  document.getElementById('members').hidden = false;
}

async function poll() {
  try {
    const [channels, stats] = await Promise.all([getJson(`${api}/channels`), getJson(`${api}/stats`)]);
    renderChannels(channels);
    drawChart(stats.samples);
    document.getElementById('chart-scope').textContent = describeScope(stats);
    await refreshMembers();
  } catch (error) {
    document.getElementById('log-status').textContent = `Refresh failed: ${error.message}`;
  } finally {
    window.setTimeout(poll, POLL_MILLISECONDS);
  }
}

// Trigger form

function setupTrigger() {
  const form = document.getElementById('trigger-form');
  const status = document.getElementById('trigger-status');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.className = '';
    status.textContent = 'Publishing…';
    try {
      const response = await fetch(form.action, {
        method: 'POST',
        headers: { Accept: 'application/json' },
        body: new URLSearchParams(new FormData(form)),
      });
      const payload = await response.json();
      if (!response.ok) throw new Error(payload.error || `HTTP ${response.status}`);
      status.textContent = `Published ${payload.published} to ${payload.channels.join(', ')}.`;
    } catch (error) {
      status.className = 'error';
      status.textContent = `Not published: ${error.message}`;
    }
  });
}

// Live log

const log = {
  paused: false,
  pending: [],
  skipped: 0,
  rows: document.getElementById('log-rows'),
  status: document.getElementById('log-status'),
};

function filters() {
  return {
    channel: document.getElementById('filter-channel').value.trim().toLowerCase(),
    event: document.getElementById('filter-event').value.trim().toLowerCase(),
    kind: document.getElementById('filter-kind').value,
  };
}

function matches(row, wanted) {
  if (wanted.kind && row.dataset.kind !== wanted.kind) return false;
  if (wanted.channel && !row.dataset.channel.toLowerCase().includes(wanted.channel)) return false;
  if (wanted.event && !row.dataset.event.toLowerCase().includes(wanted.event)) return false;
  return true;
}

function applyFilters() {
  const wanted = filters();
  for (const row of log.rows.rows) row.hidden = !matches(row, wanted);
}

function describe(detail) {
  const parts = [];
  for (const [name, value] of Object.entries(detail)) {
    if (name === 'channel' || name === 'event' || value === null || value === '') continue;
    parts.push(`${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  return parts.join('  ');
}

function makeRow(record, node) {
  const detail = record.detail || {};
  const row = element('tr', null, record.kind);
  row.dataset.kind = record.kind;
  row.dataset.channel = detail.channel || '';
  row.dataset.event = detail.event || '';
  const time = new Date(record.time * 1000);
  const clock = time.toLocaleTimeString(undefined, { hour12: false }) +
    `.${String(time.getMilliseconds()).padStart(3, '0')}`;
  row.appendChild(element('td', clock, 'num'));
  row.appendChild(element('td', KIND_LABELS[record.kind] || record.kind));
  row.appendChild(element('td', detail.channel || '', 'mono'));
  row.appendChild(element('td', detail.event || '', 'mono'));
  const extra = record.node && record.node !== node ? `node=${record.node}  ` : '';
  row.appendChild(element('td', extra + describe(detail), 'details'));
  return row;
}

function showRecords(records) {
  const wanted = filters();
  const node = body.dataset.node || '';
  const fragment = document.createDocumentFragment();
  for (let index = records.length - 1; index >= 0; index -= 1) {
    const row = makeRow(records[index], node);
    row.hidden = !matches(row, wanted);
    fragment.appendChild(row);
  }
  log.rows.insertBefore(fragment, log.rows.firstChild);
  while (log.rows.rows.length > MAX_ROWS) log.rows.deleteRow(-1);
}

function receive(records) {
  if (!log.paused) {
    showRecords(records);
    return;
  }
  log.pending.push(...records);
  if (log.pending.length > MAX_ROWS) {
    log.skipped += log.pending.length - MAX_ROWS;
    log.pending.splice(0, log.pending.length - MAX_ROWS);
  }
  log.status.textContent = `Paused: ${log.pending.length + log.skipped} new event(s) waiting.`;
}

function setupLog() {
  for (const id of ['filter-channel', 'filter-event', 'filter-kind']) {
    document.getElementById(id).addEventListener('input', applyFilters);
  }
  const pause = document.getElementById('pause');
  pause.addEventListener('click', () => {
    log.paused = !log.paused;
    pause.setAttribute('aria-pressed', String(log.paused));
    pause.textContent = log.paused ? 'Resume' : 'Pause';
    if (log.paused) {
      log.status.textContent = 'Paused.';
      return;
    }
    const waiting = log.pending;
    const skipped = log.skipped;
    log.pending = [];
    log.skipped = 0;
    showRecords(waiting);
    log.status.textContent = skipped ? `${skipped} older event(s) skipped while paused.` : '';
  });
  document.getElementById('clear').addEventListener('click', () => {
    log.rows.replaceChildren();
    log.pending = [];
    log.skipped = 0;
  });

  const source = new EventSource(`${api}/stream`);
  source.addEventListener('open', () => {
    log.status.textContent = log.paused ? log.status.textContent : 'Live.';
  });
  source.addEventListener('recent', (message) => {
    // Sent on each (re)connection: the server's recent events replace the page's.
    log.rows.replaceChildren();
    log.pending = [];
    receive(JSON.parse(message.data));
  });
  source.addEventListener('events', (message) => receive(JSON.parse(message.data)));
  source.addEventListener('dropped', (message) => {
    const { count } = JSON.parse(message.data);
    log.status.textContent = `${count} event(s) dropped because the page fell behind.`;
  });
  source.addEventListener('error', () => {
    log.status.textContent = 'Live log disconnected; reconnecting…';
  });
}

setupTrigger();
setupLog();
poll();
