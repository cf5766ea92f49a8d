/**
 * The showcase's icon, served at `/favicon.ico` as `image/svg+xml` and linked from its pages: a
 * feed symbol (a dot and two arcs) on the dashboard's blue. Under 300 bytes; no script.
 */
export const faviconSvg =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
  '<rect width="32" height="32" rx="7" fill="#3b6ef5"/>' +
  '<circle cx="10" cy="22" r="3" fill="#fff"/>' +
  '<path d="M8 13a11 11 0 0 1 11 11M8 6a18 18 0 0 1 18 18" fill="none" stroke="#fff" stroke-width="3.4" stroke-linecap="round"/>' +
  '</svg>'
