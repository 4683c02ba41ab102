/* liqsite charts: embed the Bokeh charts (data-charts-url) and make them readable.

   Tooltips and a shared crosshair, zoom presets, colour sensitivity, tier and layer switches,
   a pan & zoom switch (off on touch screens, so the page scrolls), local time, keyboard reading.
   Hand-written, no build step, no eval: the charts' JSON carries no code, this file finds its
   models by name (see maps/figures). */
(function () {
  "use strict";

  var SENSITIVITY_DECADES = 1.5;
  var TICK_MANTISSAS = [1, 1.5, 2, 3, 5, 7];
  var MAX_TICKS = 8;
  var MARKER_HIT_PX = 6;

  /* ---- numbers and times, written as the pages write them (maps/formatting.py) ---- */

  function usd(value) {
    if (value == null || isNaN(value)) return "–";
    var sign = value < 0 ? "-" : "";
    var v = Math.abs(value);
    var units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < units.length; i++) {
      if (v >= units[i][0] * 0.9995) {
        var scaled = v / units[i][0];
        var digits = scaled < 10 ? 2 : scaled < 100 ? 1 : 0;
        var text = scaled.toFixed(digits);
        if (text.indexOf(".") >= 0) text = text.replace(/0+$/, "").replace(/\.$/, "");
        return sign + "$" + text + units[i][1];
      }
    }
    return sign + "$" + Math.round(v).toLocaleString("en-US");
  }

  function usdTick(value) {
    var v = Math.abs(value);
    if (v === 0) return "$0";
    if (v >= 1e9) return "$" + trim(v / 1e9, v >= 1e10 ? 0 : 1) + "B";
    if (v >= 1e6) return "$" + trim(v / 1e6, v >= 1e7 ? 0 : 1) + "M";
    if (v >= 1e3) return "$" + trim(v / 1e3, 0) + "K";
    return "$" + Math.round(v);
  }

  function trim(v, digits) {
    var text = v.toFixed(digits);
    return text.indexOf(".") >= 0 ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
  }

  function priceText(value, decimals) {
    return value.toLocaleString("en-US", {
      minimumFractionDigits: decimals, maximumFractionDigits: decimals
    });
  }

  function pct(value) {
    var text = Math.abs(value).toFixed(2) + "%";
    if (value === 0) return "at the price";
    return text + (value < 0 ? " below" : " above");
  }

  /* Times: the data is shifted to the wall clock of the page's zone, so it is written as UTC. */
  var WALL = new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23"
  });

  function when(ms) {
    return WALL.format(new Date(ms));
  }

  function duration(ms) {
    var minutes = Math.round(ms / 60000);
    if (minutes < 120) return minutes + " min";
    if (minutes < 2880) return trim(minutes / 60, 1) + " h";
    return trim(minutes / 1440, 1) + " d";
  }

  function pageZone() {
    var zone = document.body.getAttribute("data-time-zone");
    if (zone) return zone;
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; }
  }

  /* The offset (ms) of `zone` from UTC at the instant `ms`, memoised per hour. */
  function offsetFinder(zone) {
    if (zone === "UTC" || zone === "Etc/UTC") return null;
    var format;
    try {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit"
      });
    } catch (e) {
      return null;
    }
    var memo = new Map();
    return function (ms) {
      var hour = Math.floor(ms / 3600000);
      if (memo.has(hour)) return memo.get(hour);
      var parts = {};
      format.formatToParts(new Date(hour * 3600000)).forEach(function (p) { parts[p.type] = p.value; });
      var wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
      var offset = wall - hour * 3600000;
      memo.set(hour, offset);
      return offset;
    };
  }

  /* Bokeh hands back tags as Maps: make plain objects of them. */
  function plain(value) {
    if (value instanceof Map) {
      var out = {};
      value.forEach(function (v, k) { out[k] = plain(v); });
      return out;
    }
    if (Array.isArray(value)) return value.map(plain);
    return value;
  }

  function colourTicks(low, high) {
    if (!(low > 0 && high > low)) return [];
    var first = Math.floor(Math.log10(low)), last = Math.ceil(Math.log10(high));
    var inside = [];
    for (var e = first; e <= last; e++) {
      TICK_MANTISSAS.forEach(function (m) {
        var v = m * Math.pow(10, e);
        if (v >= low && v <= high) inside.push(v);
      });
    }
    if (inside.length <= MAX_TICKS) return inside;
    var picks = [];
    for (var i = 0; i < MAX_TICKS; i++) {
      var at = Math.round(i * (inside.length - 1) / (MAX_TICKS - 1));
      if (picks.indexOf(inside[at]) < 0) picks.push(inside[at]);
    }
    return picks;
  }

  function column(source, name) {
    return source ? source.data[name] : null;
  }

  /* Index of the last value <= x in an ascending array (or -1). */
  function floorIndex(values, x) {
    var lo = 0, hi = values.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (values[mid] <= x) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  /* ---- one chart ---- */

  function Chart(el, views) {
    this.el = el;
    this.views = views;
    var root = views.roots[0].model;
    this.doc = root.document;
    this.meta = plain(root.tags[0] || {});
    this.shift = offsetFinder(pageZone());
    this.pinned = false;
  }

  Chart.prototype.model = function (name) {
    return this.doc.get_model_by_name(name);
  };

  /* The view of a model (plot views are looked up once: hovering asks for them constantly). */
  Chart.prototype.view = function (model) {
    if (!model) return null;
    this.viewCache = this.viewCache || new Map();
    if (!this.viewCache.has(model)) this.viewCache.set(model, this.views.find_one(model));
    return this.viewCache.get(model);
  };

  Chart.prototype.setup = function () {
    var names = ["heatmap", "volume", "liquidations", "map", "tiers"];
    var self = this;
    this.plots = {};
    names.forEach(function (name) { self.plots[name] = self.model(name); });
    this.sources = {};
    ["heat-source", "candles", "volume-source", "liq-source", "markers", "map-source", "tiers-source"]
      .forEach(function (name) { self.sources[name] = self.model(name); });
    this.mapper = this.model("heat-mapper");
    this.ticks = this.model("heat-ticks");
    this.priceRange = this.model("price-range");
    this.timeRange = this.model("time-range");
    this.spans = {
      priceHeat: this.model("xhair-price-heatmap"),
      priceMap: this.model("xhair-price-map"),
      timeHeat: this.model("xhair-time-heatmap"),
      timeVolume: this.model("xhair-time-volume"),
      timeLiq: this.model("xhair-time-liquidations")
    };
    this.formatTicks();
    this.shiftTimes();
    this.keepOriginalTiers();
    this.listen();
    this.quietTabStops();
    this.fitNarrow();
    this.buildControls();
    this.el.addEventListener("keydown", this.onKey.bind(this));
  };

  /* Dollar ticks as the pages write dollars ($1.2B, $350M), absolute on the mirrored axes. */
  Chart.prototype.formatTicks = function () {
    this.doc.all_models.forEach(function (model) {
      var tags = model.tags || [];
      if (tags.indexOf("usd") < 0 || typeof model.doFormat !== "function") return;
      model.doFormat = function (ticks) { return ticks.map(usdTick); };
      model.change.emit();
    });
  };

  /* Shift every time column to the wall clock of the page's time zone. */
  Chart.prototype.shiftTimes = function () {
    var shift = this.shift;
    if (!shift) return;
    var self = this;
    var columns = this.meta.time_columns || {};
    Object.keys(columns).forEach(function (name) {
      var source = self.sources[name] || self.model(name);
      if (!source) return;
      var data = Object.assign({}, source.data);
      columns[name].forEach(function (key) {
        if (!data[key]) return;
        data[key] = Array.prototype.map.call(data[key], function (t) { return t + shift(t); });
      });
      source.data = data;
    });
    var range = this.timeRange;
    if (range) {
      var start = range.start + shift(range.start), end = range.end + shift(range.end);
      range.setv({ bounds: [start, end], reset_start: start, reset_end: end, start: start, end: end });
    }
  };

  Chart.prototype.keepOriginalTiers = function () {
    var map = this.sources["map-source"], tiers = this.sources["tiers-source"];
    this.hiddenTiers = new Set();
    this.originalMap = map ? Object.assign({}, map.data) : null;
    this.originalTiers = tiers ? Object.assign({}, tiers.data) : null;
  };

  Chart.prototype.listen = function () {
    var self = this;
    ["heatmap", "map", "volume", "liquidations"].forEach(function (name) {
      var plot = self.plots[name];
      if (!plot) return;
      plot.on_event("mousemove", function (e) { if (!self.pinned) self.show(name, e.x, e.y, e.sx, e.sy); });
      plot.on_event("tap", function (e) { self.pinned = true; self.show(name, e.x, e.y, e.sx, e.sy); });
      plot.on_event("mouseleave", function () { if (!self.pinned) self.hide(); });
    });
    document.addEventListener("pointerdown", function (event) {
      if (self.pinned && !self.el.contains(event.target)) { self.pinned = false; self.hide(); }
    });
  };

  /* Bokeh makes each canvas a tab stop that does nothing for a keyboard: the chart container
     is the one stop, and reads values with the arrow keys. Every plot of the document, the
     panes other packages add (levels, signals) included. */
  Chart.prototype.quietTabStops = function () {
    var self = this;
    this.doc.all_models.forEach(function (model) {
      var view = self.views.find_one(model);
      var events = view && view.canvas_view && view.canvas_view.events_el;
      if (events) {
        events.tabIndex = -1;
        events.style.outline = "none";  /* focused by a tap or click only */
      }
    });
  };

  Chart.prototype.fitNarrow = function () {
    if (this.el.clientWidth >= 560) return;
    var self = this;
    ["heatmap", "liquidations"].forEach(function (name) {
      var plot = self.plots[name];
      if (!plot) return;
      plot.below.forEach(function (axis) {
        if (axis.ticker && "desired_num_ticks" in axis.ticker) axis.ticker.desired_num_ticks = 3;
      });
    });
  };

  /* ---- the tooltip and the crosshair ---- */

  Chart.prototype.tip = function () {
    if (!this.tipEl) {
      this.tipEl = document.createElement("div");
      this.tipEl.className = "chart-tip";
      this.tipEl.setAttribute("role", "status");
      this.tipEl.hidden = true;
      this.el.appendChild(this.tipEl);
    }
    return this.tipEl;
  };

  Chart.prototype.hide = function () {
    if (this.tipEl) this.tipEl.hidden = true;
    this.setCrosshair(null, null);
  };

  Chart.prototype.setCrosshair = function (price, time) {
    var s = this.spans;
    [s.priceHeat, s.priceMap].forEach(function (span) { if (span) span.location = price; });
    [s.timeHeat, s.timeVolume, s.timeLiq].forEach(function (span) { if (span) span.location = time; });
  };

  Chart.prototype.show = function (plotName, x, y, sx, sy) {
    var lines = null, price = null, time = null;
    if (plotName === "heatmap") {
      lines = this.heatLines(x, y, sx, sy);
      price = y; time = x;
    } else if (plotName === "map") {
      lines = this.mapLines(y);
      price = y;
    } else if (plotName === "volume") {
      lines = this.candleLines(x, true);
      time = x;
    } else if (plotName === "liquidations") {
      lines = this.liqLines(x);
      time = x;
    }
    if (!lines || !lines.length) { this.hide(); return; }
    this.setCrosshair(price, time);
    this.place(plotName, lines, sx, sy);
  };

  Chart.prototype.place = function (plotName, lines, sx, sy) {
    var tip = this.tip();
    tip.replaceChildren();
    lines.forEach(function (line, i) {
      var row = document.createElement(i === 0 ? "strong" : "div");
      if (i === 0) row.className = "chart-tip__head";
      if (Array.isArray(line)) {
        line.forEach(function (part) {
          var span = document.createElement("span");
          span.textContent = part[0];
          if (part[1]) span.className = part[1];
          row.appendChild(span);
        });
      } else {
        row.textContent = line;
      }
      tip.appendChild(row);
    });
    tip.hidden = false;
    var view = this.view(this.plots[plotName]);
    var canvas = view && view.canvas_view ? view.canvas_view.el : null;
    var box = this.el.getBoundingClientRect();
    var origin = canvas ? canvas.getBoundingClientRect() : box;
    var left = origin.left - box.left + sx + 16;
    var top = origin.top - box.top + sy + 16;
    var width = tip.offsetWidth, height = tip.offsetHeight;
    if (left + width > box.width - 4) left = Math.max(4, origin.left - box.left + sx - width - 16);
    if (top + height > box.height - 4) top = Math.max(4, origin.top - box.top + sy - height - 16);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  };

  Chart.prototype.rowAt = function (price) {
    var map = this.sources["map-source"];
    if (!map) return -1;
    var lo = map.data.lo, hi = map.data.hi;
    var i = floorIndex(lo, price);
    return i >= 0 && price < hi[i] ? i : -1;
  };

  Chart.prototype.distance = function (price) {
    return 100 * (price - this.meta.last_close) / this.meta.last_close;
  };

  Chart.prototype.heatLines = function (t, p, sx, sy) {
    var source = this.sources["heat-source"];
    if (!source) return null;
    var d = this.meta.decimals;
    var image = source.data.image[0];
    var shape = image.shape || [0, 0];
    var x0 = source.data.x[0], y0 = source.data.y[0], dw = source.data.dw[0], dh = source.data.dh[0];
    var col = Math.floor((t - x0) / dw * shape[1]);
    var row = Math.floor((p - y0) / dh * shape[0]);
    if (col < 0 || row < 0 || col >= shape[1] || row >= shape[0]) return null;
    var cell = image[row * shape[1] + col];
    var lines = [when(t) + " · " + priceText(p, d)];
    lines.push([["Price row " + priceText(y0 + row * dh / shape[0], d) + " – " + priceText(y0 + (row + 1) * dh / shape[0], d), ""]]);
    lines.push([[pct(this.distance(p)) + " the last close", "muted"]]);
    if (cell > 0) {
      var parts = [["Heatmap cell " + usd(cell), "strong"]];
      var share = source.data.share ? source.data.share[0] : null;
      if (share) {
        var longs = cell * share[row * shape[1] + col] / 255;
        parts.push([" · longs " + usd(longs), "long"], [" · shorts " + usd(cell - longs), "short"]);
      }
      lines.push(parts);
    } else {
      lines.push([["No open positions estimated here then", "muted"]]);
    }
    var now = this.mapRow(p);
    if (now) lines = lines.concat(now);
    var candle = this.candleLines(t, false);
    if (candle) lines = lines.concat(candle);
    var real = this.markerAt(sx, sy);
    if (real) lines.push(real);
    return lines;
  };

  /* The map's row at this price, as the heatmap tooltip adds it. */
  Chart.prototype.mapRow = function (p) {
    var map = this.sources["map-source"];
    var i = this.rowAt(p);
    if (!map || i < 0) return null;
    var data = map.data;
    var out = [[["Now at this price: ", "muted"], ["longs " + usd(data.lt[i]), "long"], [" · shorts " + usd(data.st[i]), "short"]]];
    out.push(this.cumulativeLine(p, i));
    return out;
  };

  Chart.prototype.cumulativeLine = function (p, i) {
    var data = this.sources["map-source"].data;
    if (p <= this.meta.last_close) {
      return [["If price falls to here: ", "muted"], [usd(data.cl[i]) + " of longs liquidated (cumulative)", "long"]];
    }
    return [["If price rises to here: ", "muted"], [usd(data.cs[i]) + " of shorts liquidated (cumulative)", "short"]];
  };

  Chart.prototype.mapLines = function (p) {
    var map = this.sources["map-source"];
    var i = this.rowAt(p);
    if (!map || i < 0) return null;
    var d = this.meta.decimals, data = map.data, tiers = this.meta.tiers || [];
    var lines = [priceText(data.lo[i], d) + " – " + priceText(data.hi[i], d)];
    lines.push([[pct(this.distance(data.y[i])) + " the last close", "muted"]]);
    var self = this;
    ["l", "s"].forEach(function (prefix) {
      var side = prefix === "l" ? "long" : "short";
      var total = prefix === "l" ? data.lt[i] : data.st[i];
      var parts = [[(side === "long" ? "Longs " : "Shorts ") + usd(total), side + " strong"]];
      var original = self.originalMap || data;
      tiers.forEach(function (label, k) {
        var value = Math.abs(original[prefix + k][i]);
        if (value > 0) {
          var hidden = self.hiddenTiers.has(k) ? " (hidden)" : "";
          parts.push([" · " + label + " " + usd(value) + hidden, "muted"]);
        }
      });
      lines.push(parts);
    });
    lines.push(this.cumulativeLine(data.y[i], i));
    return lines;
  };

  Chart.prototype.candleLines = function (t, withHead) {
    var source = this.sources.candles;
    if (!source || !source.data.t0) return null;
    var data = source.data, interval = this.meta.candle_ms;
    var i = floorIndex(data.t0, t);
    if (i < 0 || t >= data.t0[i] + interval) return null;
    var d = this.meta.decimals;
    var lines = withHead ? [when(data.t0[i]) + " · " + duration(interval) + " candle"] : [];
    lines.push([
      ["O " + priceText(data.open[i], d) + "  H " + priceText(data.high[i], d) +
       "  L " + priceText(data.low[i], d) + "  C " + priceText(data.close[i], d), "mono"]
    ]);
    lines.push([["Volume " + usd(data.volume[i]), "muted"]]);
    return lines;
  };

  Chart.prototype.liqLines = function (t) {
    var source = this.sources["liq-source"];
    if (!source) return null;
    var data = source.data, width = this.meta.liq_width;
    var i = floorIndex(data.start, t);
    if (i < 0 || t >= data.start[i] + width) return null;
    var lines = [when(data.start[i]) + " · " + duration(width)];
    lines.push([["Estimated: ", "muted"], ["longs " + usd(-data.long[i]), "long"], [" · shorts " + usd(data.short[i]), "short"]]);
    if (this.hasLayer("real")) {
      lines.push([["Real: ", "muted"], ["longs " + usd(-data.real_long[i]), "long"], [" · shorts " + usd(data.real_short[i]), "short"]]);
    }
    return lines;
  };

  Chart.prototype.hasLayer = function (name) {
    return (this.meta.layers || []).some(function (layer) { return layer.name === name; });
  };

  /* The real-liquidation marker under the pointer, if any. */
  Chart.prototype.markerAt = function (sx, sy) {
    var source = this.sources.markers;
    var view = this.view(this.plots.heatmap);
    if (!source || !view || !this.layerVisible("real")) return null;
    var data = source.data, xs = view.frame.x_scale, ys = view.frame.y_scale;
    var best = -1, bestGap = Infinity;
    for (var i = 0; i < data.t.length; i++) {
      var dx = xs.compute(data.t[i]) - sx, dy = ys.compute(data.price[i]) - sy;
      var gap = Math.sqrt(dx * dx + dy * dy) - data.size[i] / 2;
      if (gap < MARKER_HIT_PX && gap < bestGap) { best = i; bestGap = gap; }
    }
    if (best < 0) return null;
    var side = data.long[best] ? "long" : "short";
    var count = data.count[best];
    return [["Real liquidations: ", "muted"], [side + "s " + usd(data.usd[best]), side + " strong"],
      [" · " + count + " order" + (count === 1 ? "" : "s") + " near " + priceText(data.price[best], this.meta.decimals), "muted"]];
  };

  /* ---- controls: presets, sensitivity, tiers, layers, pan & zoom ---- */

  Chart.prototype.buildControls = function () {
    var bar = this.el.parentElement.querySelector(".chart-controls");
    if (!bar) return;
    var self = this;
    bar.hidden = false;
    bar.querySelectorAll("[data-zoom]").forEach(function (button) {
      button.addEventListener("click", function () { self.zoom(button.getAttribute("data-zoom")); });
    });
    var slider = bar.querySelector("[data-sensitivity]");
    if (slider) {
      var apply = function () { self.sensitivity(+slider.value); };
      slider.addEventListener("input", apply);
      if (+slider.value !== 50) apply();
    }
    this.buildSwitches(bar.querySelector("[data-tier-switches]"), this.meta.tiers || [], function (k, on) { self.toggleTier(k, on); }, "tier");
    this.buildSwitches(bar.querySelector("[data-layer-switches]"), (this.meta.layers || []).map(function (l) { return l.label; }), function (k, on) {
      self.toggleLayer(self.meta.layers[k].name, on);
    }, "layer");
    var pan = bar.querySelector("[data-pan-zoom]");
    if (pan) {
      var touch = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
      this.panZoom(pan, !touch);
      pan.addEventListener("click", function () {
        self.panZoom(pan, pan.getAttribute("aria-pressed") !== "true");
      });
    }
  };

  Chart.prototype.buildSwitches = function (holder, labels, onToggle, kind) {
    if (!holder) return;
    holder.replaceChildren();
    labels.forEach(function (label, k) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "switch switch--" + kind + " switch--" + kind + "-" + k;
      button.setAttribute("aria-pressed", "true");
      button.textContent = label;
      button.addEventListener("click", function () {
        var on = button.getAttribute("aria-pressed") !== "true";
        button.setAttribute("aria-pressed", on ? "true" : "false");
        onToggle(k, on);
      });
      holder.appendChild(button);
    });
    holder.hidden = labels.length === 0;
  };

  Chart.prototype.zoom = function (preset) {
    var range = this.priceRange;
    if (!range) return;
    var close = this.meta.last_close, window_;
    if (preset === "fit") window_ = this.meta.fit;
    else if (preset === "all") window_ = this.meta.all;
    else window_ = [close * (1 - preset / 100), close * (1 + preset / 100)];
    var all = this.meta.all;
    range.setv({ start: Math.max(window_[0], all[0]), end: Math.min(window_[1], all[1]) });
  };

  Chart.prototype.sensitivity = function (value) {
    if (!this.mapper) return;
    var base = this.meta.colour;
    var factor = Math.pow(10, SENSITIVITY_DECADES * (50 - value) / 50);
    var low = base.low * factor, high = base.high * factor;
    this.mapper.setv({ low: low, high: high });
    if (this.ticks) this.ticks.ticks = colourTicks(low, high);
  };

  Chart.prototype.toggleTier = function (k, on) {
    if (on) this.hiddenTiers.delete(k); else this.hiddenTiers.add(k);
    var self = this;
    var map = this.sources["map-source"], tiers = this.sources["tiers-source"];
    if (map && this.originalMap) {
      var data = Object.assign({}, map.data);
      (this.meta.tiers || []).forEach(function (label, i) {
        ["l", "s"].forEach(function (prefix) {
          var original = self.originalMap[prefix + i];
          data[prefix + i] = self.hiddenTiers.has(i) ? Array.prototype.map.call(original, function () { return 0; }) : original;
        });
      });
      map.data = data;
    }
    if (tiers && this.originalTiers) {
      var t = Object.assign({}, this.originalTiers);
      ["long", "short"].forEach(function (key) {
        t[key] = Array.prototype.map.call(self.originalTiers[key], function (v, i) { return self.hiddenTiers.has(i) ? 0 : v; });
      });
      tiers.data = t;
    }
  };

  /* The renderers of a named layer (maps/figures/layers.py names them "layer:<name>"). */
  Chart.prototype.layer = function (name) {
    this.layers = this.layers || {};
    if (!this.layers[name]) {
      this.layers[name] = Array.from(this.doc.all_models).filter(function (m) {
        return m.name === "layer:" + name;
      });
    }
    return this.layers[name];
  };

  Chart.prototype.layerVisible = function (name) {
    var found = this.layer(name);
    return found.length > 0 && found[0].visible;
  };

  /* A layer that replaces a part of the chart while it is on: the z-score colours replace the
     notional colour scale. */
  var REPLACES = {zscore: "heat-colorbar"};

  Chart.prototype.toggleLayer = function (name, on) {
    this.layer(name).forEach(function (model) { model.visible = on; });
    var replaced = REPLACES[name] && this.model(REPLACES[name]);
    if (replaced) replaced.visible = !on;
  };

  /* Pan and wheel/pinch zoom on, or off so that a drag or a wheel moves the page. */
  Chart.prototype.panZoom = function (button, on) {
    var heat = this.plots.heatmap;
    if (heat) {
      heat.toolbar.tools.forEach(function (tool) {
        var type = tool.type || (tool.constructor && tool.constructor.__name__);
        if (type === "PanTool" || type === "WheelZoomTool") tool.active = on;
      });
    }
    button.setAttribute("aria-pressed", on ? "true" : "false");
    this.el.classList.toggle("is-interactive", on);
  };

  /* ---- keyboard: arrows move the reading point over the heatmap ---- */

  Chart.prototype.onKey = function (event) {
    var keys = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    if (event.key === "Escape") { this.pinned = false; this.hide(); return; }
    if (!(event.key in keys) || event.target !== this.el) return;
    event.preventDefault();
    var source = this.sources["heat-source"], view = this.view(this.plots.heatmap);
    if (!source || !view) return;
    var shape = source.data.image[0].shape;
    var x0 = source.data.x[0], y0 = source.data.y[0], dw = source.data.dw[0], dh = source.data.dh[0];
    if (!this.cursor) {
      this.cursor = { col: shape[1] - 1, row: Math.floor((this.meta.last_close - y0) / dh * shape[0]) };
    }
    var move = keys[event.key], step = event.shiftKey ? 10 : 1;
    this.cursor.col = Math.min(shape[1] - 1, Math.max(0, this.cursor.col + move[0] * step));
    this.cursor.row = Math.min(shape[0] - 1, Math.max(0, this.cursor.row + move[1] * step));
    var t = x0 + (this.cursor.col + 0.5) * dw / shape[1];
    var p = y0 + (this.cursor.row + 0.5) * dh / shape[0];
    this.pinned = true;
    this.show("heatmap", t, p, view.frame.x_scale.compute(t), view.frame.y_scale.compute(p));
  };

  /* ---- embedding ---- */

  function embedCharts(root) {
    if (!window.Bokeh) return;
    root.querySelectorAll("[data-charts-url]").forEach(function (el) {
      var url = el.getAttribute("data-charts-url");
      if (el.getAttribute("data-embedded") === url) return;
      el.setAttribute("data-embedded", url);
      el.setAttribute("aria-busy", "true");
      fetch(url, { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (item) {
          el.replaceChildren();
          return window.Bokeh.embed.embed_item(item, el.id);
        })
        .then(function (views) {
          el._bokehViews = views;
          var chart = new Chart(el, views);
          chart.setup();
          el._chart = chart;
          el.removeAttribute("aria-busy");
          el.classList.add("is-ready");
          var ready = Math.round(performance.now());
          el.setAttribute("data-ready-ms", String(ready));
          if (performance.mark) performance.mark("liqsite:charts-ready");
        })
        .catch(function (error) {
          el.removeAttribute("aria-busy");
          el.classList.add("is-failed");
          var status = el.querySelector(".charts__status") || el.appendChild(document.createElement("p"));
          status.className = "charts__status";
          status.textContent = "The charts could not load (" + error.message + "). Reload to try again.";
        });
    });
  }

  function releaseCharts(el) {
    if (el && el.querySelectorAll) {
      el.querySelectorAll("[data-charts-url]").forEach(releaseOne);
      releaseOne(el);
    }
  }

  function releaseOne(el) {
    if (el._bokehViews && typeof el._bokehViews.clear === "function") {
      el._bokehViews.clear();
      el._bokehViews = null;
      el._chart = null;
    }
  }

  window.liqsiteCharts = { usd: usd, colourTicks: colourTicks, embed: embedCharts };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { embedCharts(document); });
  } else {
    embedCharts(document);
  }
  document.addEventListener("htmx:beforeCleanupElement", function (event) { releaseCharts(event.target); });
  document.addEventListener("htmx:afterSettle", function () { embedCharts(document); });
})();
