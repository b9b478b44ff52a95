/** Tailwind 3.4 config for static/embed.css, the widget's CSS on other
 *  sites (embed.js). Unlike app.css it must not restyle the host page: no
 *  preflight (views/embed.css has a reset scoped to the widget instead),
 *  and every utility is scoped under [data-presence-embed], the element
 *  embed.js puts the widget in. `make css` builds both. */
const base = require("./tailwind.config.js");

module.exports = {
  ...base,
  content: ["./views/widget.templ", "./static/presence.js"],
  corePlugins: { preflight: false },
  important: "[data-presence-embed]",
};
