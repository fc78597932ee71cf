// Package dashboards is the home of dmarcd's Grafana dashboards (grafana/),
// their provisioning files (provisioning/) and the Prometheus alert rules
// (alerts/), and of the tests that run every dashboard query on a real
// ClickHouse and every alert rule through promtool. Its one piece of code,
// LayoutSVG, draws a dashboard's layout for the documentation
// (docs/img/dashboard-*.svg, make dashboard-pictures).
package dashboards
