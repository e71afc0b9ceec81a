/**
 * RFC 6266 `Content-Disposition: attachment` for a download: an ASCII fallback name (anything else
 * becomes `_`) and the exact UTF-8 name in `filename*`.
 */
export function attachmentDisposition(filename: string): string {
  if (!filename) return 'attachment';
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}
