// Package avatar turns an uploaded picture into a safe avatar and keeps
// avatars as files named by their content. An upload is never served as it
// came: it is decoded (PNG, JPEG, GIF or WebP only; its dimensions are
// checked before its pixels are decoded), turned upright by its EXIF
// orientation, cropped to a centred square, resized to Size pixels and
// encoded afresh as PNG — so no SVG, script, metadata or trailing bytes of
// the original survive.
package avatar

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// Limits on uploads.
const (
	// MaxBytes is the largest file accepted (2 MiB).
	MaxBytes = 2 << 20
	// MaxSide is the largest width or height accepted, in pixels.
	MaxSide = 8192
	// MaxPixels is the largest width × height accepted: about 96 MiB once
	// decoded, so a small file cannot unpack into gigabytes.
	MaxPixels = 24_000_000
	// Size is the width and height of every stored avatar, in pixels.
	Size = 128
)

// Errors of Process. Callers test them with errors.Is; the messages are
// fit to show to the user.
var (
	ErrTooLarge    = fmt.Errorf("the image is larger than %d MiB", MaxBytes>>20)
	ErrUnsupported = errors.New("the file is not a PNG, JPEG, GIF or WebP image")
	ErrDimensions  = fmt.Errorf("the image is too large or too narrow: at most %d pixels a side and %d megapixels", MaxSide, MaxPixels/1_000_000)
	ErrCorrupt     = errors.New("the image could not be decoded")
)

// formats are the decoders accepted, by name, each with its own
// DecodeConfig, so what decodes is exactly what was sniffed and checked.
var formats = map[string]struct {
	config func([]byte) (image.Config, error)
	decode func([]byte) (image.Image, error)
}{
	"png":  {func(b []byte) (image.Config, error) { return png.DecodeConfig(bytes.NewReader(b)) }, func(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }},
	"jpeg": {func(b []byte) (image.Config, error) { return jpeg.DecodeConfig(bytes.NewReader(b)) }, func(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }},
	"gif":  {func(b []byte) (image.Config, error) { return gif.DecodeConfig(bytes.NewReader(b)) }, func(b []byte) (image.Image, error) { return gif.Decode(bytes.NewReader(b)) }},
	"webp": {func(b []byte) (image.Config, error) { return webp.DecodeConfig(bytes.NewReader(b)) }, func(b []byte) (image.Image, error) { return webp.Decode(bytes.NewReader(b)) }},
}

// sniff names the format of data by its magic bytes, or "".
func sniff(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return "jpeg"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "gif"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// Process checks and re-encodes an uploaded picture: it returns a
// Size × Size PNG with no metadata, or an error matching one of ErrTooLarge,
// ErrUnsupported, ErrDimensions or ErrCorrupt.
func Process(data []byte) ([]byte, error) {
	if len(data) > MaxBytes {
		return nil, ErrTooLarge
	}
	f, ok := formats[sniff(data)]
	if !ok {
		return nil, ErrUnsupported
	}
	cfg, err := f.config(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxSide || cfg.Height > MaxSide || cfg.Width*cfg.Height > MaxPixels {
		return nil, ErrDimensions
	}
	src, err := safeDecode(f.decode, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	out := squareThumb(src, Size)
	if sniff(data) == "jpeg" {
		out = orient(out, jpegOrientation(data))
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out); err != nil {
		return nil, fmt.Errorf("avatar: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// safeDecode runs a decoder, turning a panic on hostile input (a decoder
// bug) into an error.
func safeDecode(decode func([]byte) (image.Image, error), data []byte) (m image.Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("decoder panicked: %v", r)
		}
	}()
	return decode(data)
}

// squareThumb crops the centred square of src and scales it to size ×
// size with the Catmull-Rom kernel (sharp, without the ringing of
// Lanczos on small outputs).
func squareThumb(src image.Image, size int) *image.RGBA {
	b := src.Bounds()
	side := min(b.Dx(), b.Dy())
	x0 := b.Min.X + (b.Dx()-side)/2
	y0 := b.Min.Y + (b.Dy()-side)/2
	crop := image.Rect(x0, y0, x0+side, y0+side)
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, crop, draw.Src, nil)
	return dst
}

// orient returns the square m as it should be seen under EXIF orientation
// o (1–8; anything else leaves it as it is). The crop is centred, so
// orienting after it gives the same picture as orienting before, for far
// fewer pixels.
func orient(m *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return m
	}
	n := m.Bounds().Dx()
	out := image.NewRGBA(m.Bounds())
	for y := range n {
		for x := range n {
			var sx, sy int
			switch o {
			case 2: // mirrored
				sx, sy = n-1-x, y
			case 3: // upside down
				sx, sy = n-1-x, n-1-y
			case 4: // mirrored upside down
				sx, sy = x, n-1-y
			case 5: // transposed
				sx, sy = y, x
			case 6: // needs a quarter turn clockwise
				sx, sy = y, n-1-x
			case 7: // transversed
				sx, sy = n-1-y, n-1-x
			case 8: // needs a quarter turn anticlockwise
				sx, sy = n-1-y, x
			}
			i, j := out.PixOffset(x, y), m.PixOffset(sx, sy)
			copy(out.Pix[i:i+4], m.Pix[j:j+4])
		}
	}
	return out
}

// jpegOrientation reads the EXIF orientation tag (0x0112) of a JPEG's
// APP1 segment: 1–8, or 0 when there is none or it cannot be read.
func jpegOrientation(b []byte) int {
	i := 2 // after SOI
	for i+4 <= len(b) && b[i] == 0xff {
		marker := b[i+1]
		if marker == 0xda || marker == 0xd9 { // start of scan, end: no more headers
			return 0
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return 0
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xe1 && len(seg) > 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 0
}

// tiffOrientation finds the orientation in a TIFF header's first IFD.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var u16 func([]byte) int
	var u32 func([]byte) int
	switch string(t[:4]) {
	case "II*\x00":
		u16 = func(p []byte) int { return int(p[0]) | int(p[1])<<8 }
		u32 = func(p []byte) int { return u16(p) | u16(p[2:])<<16 }
	case "MM\x00*":
		u16 = func(p []byte) int { return int(p[0])<<8 | int(p[1]) }
		u32 = func(p []byte) int { return u16(p)<<16 | u16(p[2:]) }
	default:
		return 0
	}
	off := u32(t[4:])
	if off < 8 || off+2 > len(t) {
		return 0
	}
	count := u16(t[off:])
	for k := range count {
		e := off + 2 + 12*k
		if e+12 > len(t) {
			return 0
		}
		if u16(t[e:]) == 0x0112 && u16(t[e+2:]) == 3 { // SHORT
			if o := u16(t[e+8:]); o >= 1 && o <= 8 {
				return o
			}
			return 0
		}
	}
	return 0
}
