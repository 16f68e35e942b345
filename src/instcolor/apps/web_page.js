// The web page's own script (instcolor.apps.web loads it into gradio's `js=`; nothing is fetched).
//
// On the instances photo (#overlay), the tool chosen in #photo-tool decides what the mouse does:
//  - "draw a box": a drag shows a rubber band (#draw-band); on release "x1, y1, x2, y2" in the
//    photo's own pixels goes into the hidden #drawn-box text box and the hidden #draw-add button sends it;
//  - "add a colour hint": a click opens a small panel (#hint-popup) at that point with a colour
//    input (<input type=color>, the browser's own picker) and a few swatches; "Add" writes
//    "x, y, #rrggbb" into #hint-text and clicks #hint-add.
// In the hint list (#hint-list) a button [data-remove-hint=N] writes N into the hidden #hint-remove-index
// text box and clicks the hidden #hint-remove button.
// The photo may be shown scaled and letterboxed: placement() maps the screen to its pixels.
() => {
  if (window.instcolorPage) return;
  window.instcolorPage = true;
  const PRESETS = ["#c8a07e", "#e8c4a8", "#8a5a3c", "#b22222", "#1e5aa8", "#87b4dc", "#3c7a32", "#d9b44a", "#6a4a8c", "#404040"];
  let drag = null;
  let lastColour = "#b22222";
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  // where the picture's pixels are on screen, for any object-fit (gradio shows it scaled down)
  const placement = (img) => {
    const r = img.getBoundingClientRect(), nw = img.naturalWidth, nh = img.naturalHeight;
    const fit = getComputedStyle(img).objectFit;
    let sx = r.width / nw, sy = r.height / nh;
    if (fit === "contain" || fit === "scale-down") { sx = sy = Math.min(sx, sy, fit === "scale-down" ? 1 : Infinity); }
    else if (fit === "cover") { sx = sy = Math.max(sx, sy); }
    else if (fit === "none") { sx = sy = 1; }
    const w = nw * sx, h = nh * sy;
    return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, w, h, sx, sy, nw, nh };
  };
  const inside = (p, event) => event.clientX >= p.left && event.clientX <= p.left + p.w && event.clientY >= p.top && event.clientY <= p.top + p.h;
  const corner = (p, event) => [clamp(event.clientX, p.left, p.left + p.w), clamp(event.clientY, p.top, p.top + p.h)];
  const place = (band, a, b) => Object.assign(band.style, {
    left: Math.min(a[0], b[0]) + "px", top: Math.min(a[1], b[1]) + "px",
    width: Math.abs(b[0] - a[0]) + "px", height: Math.abs(b[1] - a[1]) + "px",
  });
  // fill a (gradio) text box and press a button: how the script talks to the server
  const send = (box, value, button) => {
    const field = document.querySelector(`${box} textarea, ${box} input`);
    field.value = value;
    field.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => document.querySelector(button).click(), 50);
  };
  const tool = () => {
    const checked = document.querySelector("#photo-tool input[type=radio]:checked");
    return checked && checked.value.includes("hint") ? "hint" : "box";
  };
  const closePopup = () => document.querySelectorAll("#hint-popup, #hint-pending").forEach((e) => e.remove());

  const openPopup = (x, y, screenX, screenY) => {
    closePopup();
    const dot = document.createElement("div");
    dot.id = "hint-pending";
    Object.assign(dot.style, { position: "fixed", left: screenX - 7 + "px", top: screenY - 7 + "px", width: "10px", height: "10px",
                               border: "2px solid #fff", outline: "2px solid #000", borderRadius: "50%", background: lastColour,
                               pointerEvents: "none", zIndex: 10000 });
    const popup = document.createElement("div");
    popup.id = "hint-popup";
    popup.setAttribute("role", "dialog");
    Object.assign(popup.style, { position: "fixed", left: Math.min(screenX + 12, window.innerWidth - 230) + "px",
                                 top: Math.min(screenY + 12, window.innerHeight - 130) + "px", width: "210px", padding: "8px",
                                 background: "#fff", color: "#111", border: "1px solid #888", borderRadius: "6px",
                                 boxShadow: "0 4px 14px rgba(0,0,0,0.3)", zIndex: 10001, font: "13px system-ui, sans-serif" });
    popup.innerHTML = `<div>colour hint at <b>${x}, ${y}</b></div>
      <div style="display:flex;align-items:center;gap:6px;margin:6px 0">
        <input type="color" aria-label="hint colour" value="${lastColour}" style="width:44px;height:30px;padding:0;border:none">
        <span class="hint-hex" style="font-family:ui-monospace,monospace">${lastColour}</span></div>
      <div class="hint-presets" style="display:flex;flex-wrap:wrap;gap:3px;margin-bottom:6px">${PRESETS.map((c) =>
        `<button type="button" data-colour="${c}" title="${c}" style="width:17px;height:17px;padding:0;border:1px solid #555;background:${c}"></button>`).join("")}</div>
      <button type="button" class="hint-ok" style="padding:2px 10px">Add</button>
      <button type="button" class="hint-cancel" style="padding:2px 10px">Cancel</button>`;
    const input = popup.querySelector("input[type=color]");
    const show = (colour) => { popup.querySelector(".hint-hex").textContent = colour; dot.style.background = colour; };
    input.addEventListener("input", () => show(input.value));
    popup.querySelectorAll("[data-colour]").forEach((b) => b.addEventListener("click", () => { input.value = b.dataset.colour; show(input.value); }));
    popup.querySelector(".hint-cancel").addEventListener("click", closePopup);
    popup.querySelector(".hint-ok").addEventListener("click", () => {
      lastColour = input.value;
      closePopup();
      send("#hint-text", `${x}, ${y}, ${input.value}`, "#hint-add");
    });
    document.body.append(dot, popup);
  };

  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closePopup(); }, true);
  document.addEventListener("click", (event) => {
    const remove = event.target.closest && event.target.closest("#hint-list [data-remove-hint]");
    if (remove) send("#hint-remove-index", remove.dataset.removeHint, "#hint-remove");
  }, true);
  document.addEventListener("mousedown", (event) => {
    const img = event.target;
    if (event.button !== 0 || !(img instanceof HTMLImageElement) || !img.closest("#overlay") || !img.naturalWidth) return;
    const p = placement(img);
    if (!inside(p, event)) return;
    event.preventDefault();
    event.stopPropagation();
    if (tool() === "hint") {
      const x = Math.round(clamp((event.clientX - p.left) / p.sx, 0, p.nw)), y = Math.round(clamp((event.clientY - p.top) / p.sy, 0, p.nh));
      openPopup(x, y, event.clientX, event.clientY);
      return;
    }
    closePopup();
    const band = document.createElement("div");
    band.id = "draw-band";
    Object.assign(band.style, { position: "fixed", border: "2px dashed #ff3b30", background: "rgba(255, 59, 48, 0.15)",
                                pointerEvents: "none", zIndex: 10000 });
    document.body.appendChild(band);
    drag = { p, start: corner(p, event), band };
    place(band, drag.start, drag.start);
  }, true);
  document.addEventListener("mousemove", (event) => {
    if (drag) place(drag.band, drag.start, corner(drag.p, event));
  }, true);
  document.addEventListener("mouseup", (event) => {
    if (!drag) return;
    const { p, start, band } = drag;
    drag = null;
    band.remove();
    const end = corner(p, event);
    if (Math.abs(end[0] - start[0]) < 4 || Math.abs(end[1] - start[1]) < 4) return;  // a click, not a box
    const x = [start[0], end[0]].map((v) => clamp((v - p.left) / p.sx, 0, p.nw)).sort((a, b) => a - b);
    const y = [start[1], end[1]].map((v) => clamp((v - p.top) / p.sy, 0, p.nh)).sort((a, b) => a - b);
    send("#drawn-box", [x[0], y[0], x[1], y[1]].map((v) => Math.round(v)).join(", "), "#draw-add");
  }, true);
}
