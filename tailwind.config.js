/** Tailwind 3.4 config. `make css` builds static/app.css from views/app.css,
 *  scanning the templ views and the scripts that toggle classes. */
module.exports = {
  content: ["./views/**/*.templ", "./views/modes.go", "./static/presence.js"],
  theme: {
    extend: {},
  },
  plugins: [],
};
