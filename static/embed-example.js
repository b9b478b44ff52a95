// The example host page listens to the widget's click hook: it shows the
// clicked user instead of following the link. A host page may do anything
// here, or nothing (the link then opens the profile).
document.addEventListener("presence:user-click", function (e) {
  e.preventDefault();
  document.getElementById("last-click").textContent = "You clicked " + e.detail.username + " (id " + e.detail.id + ")";
});
