import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { repoRoot } from '../helpers';

/** Debian's chromium, as the issue asks; CI installs it with apt-get when missing. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const ARTIFACTS = path.join(repoRoot, 'test', 'artifacts');

export async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** What a page did that it must not: console errors, uncaught exceptions, dialogs (alert()). */
export interface Watch { errors: string[]; dialogs: string[] }

export function watch(page: Page): Watch {
  const w: Watch = { errors: [], dialogs: [] };
  page.on('console', (m) => { if (m.type() === 'error') w.errors.push(m.text()); });
  page.on('pageerror', (e) => w.errors.push(String(e)));
  page.on('dialog', (d) => { w.dialogs.push(`${d.type()}: ${d.message()}`); void d.dismiss(); });
  return w;
}

export async function newContext(browser: Browser, width: number, height: number, javaScriptEnabled = true): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width, height }, javaScriptEnabled, deviceScaleFactor: 1 });
}

/** Saves a full-page screenshot under test/artifacts (git-ignored) and returns its path. */
export async function shoot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** How far the page's content sticks out past the viewport horizontally (0 = readable). */
export function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth);
}
