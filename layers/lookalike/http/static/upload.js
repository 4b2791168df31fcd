// Turning a file the person picked into the image the page sends.
//
// Photos are scaled down in the browser so that the upload stays small (well inside the API's
// request limit, and inside a Lambda's 6 MB payload once base64-encoded) and search stays fast:
// the model looks at 224 pixels anyway. The preview shows exactly the image that is sent, so a
// box drawn on the preview is in that image's pixels with no further mapping.

export const UPLOAD_MAX_SIDE = 1600;
// Decoding is done in the page; beyond this a file is more than any photo needs and risks the
// tab's memory.
export const MAX_FILE_BYTES = 50 * 1024 * 1024;
// Re-encoded even when small enough in pixels: a 1600-pixel PNG can still weigh 10 MB.
const REENCODE_ABOVE_BYTES = 3 * 1024 * 1024;
const JPEG_QUALITY = 0.9;
// What the server decodes and browsers share; anything else the browser can show (AVIF, HEIC in
// Safari, an icon) is re-encoded, so the server never has to refuse what the person can see.
const SENT_AS_IS = new Set(["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"]);
// TIFF is the one format the server reads and browsers (but Safari) do not: sent unseen.
const TIFF_SIGNATURES = ["49492a00", "4d4d002a"];

export class UploadError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "UploadError";
    this.kind = kind;
  }
}

export function megabytes(bytes) {
  return `${(bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`;
}

// -> { blob, filename, width, height, previewUrl, scaled }. width/height/previewUrl are null for
// a TIFF this browser cannot show: it is sent as it is, and the results are for the whole image.
// A file that is no image is refused here, before any upload (a refused request would also be
// logged in the browser's console).
export async function prepareUpload(file, maxRequestBytes) {
  if (file.size > MAX_FILE_BYTES) {
    throw new UploadError("too-large", `This file is ${megabytes(file.size)}; the limit is ${megabytes(MAX_FILE_BYTES)}.`);
  }
  let bitmap;
  try {
    // Browsers apply the EXIF orientation here, as the server does, so pixels mean the same.
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    if (!(await isTiff(file))) throw new UploadError("not-image", "This file is not an image.");
    if (file.size > maxRequestBytes) {
      throw new UploadError("too-large", `This file is ${megabytes(file.size)}; the limit is ${megabytes(maxRequestBytes)}.`);
    }
    return { blob: file, filename: file.name || "image.tif", width: null, height: null, previewUrl: null, scaled: false };
  }
  try {
    const { width, height } = bitmap;
    const scale = Math.min(1, UPLOAD_MAX_SIDE / Math.max(width, height));
    if (scale === 1 && file.size <= REENCODE_ABOVE_BYTES && SENT_AS_IS.has(file.type)) {
      return { blob: file, filename: file.name || "pasted-image", width, height, previewUrl: URL.createObjectURL(file), scaled: false };
    }
    const blob = await drawScaled(bitmap, Math.round(width * scale), Math.round(height * scale));
    return {
      blob,
      filename: "scaled.jpg",
      width: Math.round(width * scale),
      height: Math.round(height * scale),
      previewUrl: URL.createObjectURL(blob),
      scaled: scale < 1,
    };
  } finally {
    bitmap.close();
  }
}

async function isTiff(file) {
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const hex = [...head].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return TIFF_SIGNATURES.includes(hex);
}

async function drawScaled(bitmap, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  // JPEG has no transparency; white is what the server puts under alpha as well.
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, height);
  context.imageSmoothingQuality = "high";
  context.drawImage(bitmap, 0, 0, width, height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  if (!blob) throw new UploadError("not-image", "This image could not be prepared for upload.");
  return blob;
}

// The first image among files dropped or pasted; null when there is none.
export function firstImageFile(dataTransfer) {
  const files = [...(dataTransfer?.files ?? [])];
  return files.find((file) => file.type.startsWith("image/")) ?? files[0] ?? null;
}
