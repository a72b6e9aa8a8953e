// The web admin in real headless Chromium, driven by playwright-core: sign in, find a person,
// publish a certificate to the Exchange Online emulator and to slapd, plan a deploy file and
// apply it with live progress, see it all in the audit log; a 1280x800 screenshot of every page.
//
// Started by the e2e test `web_pages` (tests/e2e/web_pages.rs), which starts smimekit-web, the
// emulator and slapd and checks the directories afterwards. Everything waits for selectors or
// text, never for a fixed time. Input from the environment:
//   PLAYWRIGHT_CORE  the playwright-core package folder
//   CHROMIUM         the browser binary
//   BASE_URL         http://127.0.0.1:PORT
//   WEB_USER, WEB_PASSWORD
//   PERSON           the address to find and publish for
//   CERT             a certificate file for PERSON
//   DEPLOY           a deploy file; DEPLOY_FILES: the files it names, ':'-separated
//   SHOTS            the folder for the screenshots
// Prints one JSON line with what it saw; exits non-zero on the first failure.

'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

const BASE = env('BASE_URL');
const SHOTS = env('SHOTS');
const PERSON = env('PERSON');
// Generous: the machine is busy; every wait ends as soon as its condition holds.
const WAIT = 60_000;

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: env('CHROMIUM'),
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  ctx.setDefaultTimeout(WAIT);
  const seen = { shots: [], console_errors: [], csp_violations: 0 };
  try {
    const page = await ctx.newPage();
    // Errors while signed in (the refusals before sign-in and after sign-out are expected).
    let signedIn = false;
    page.on('console', (m) => {
      if (signedIn && m.type() === 'error') seen.console_errors.push(m.text());
    });
    const shot = async (name) => {
      const file = path.join(SHOTS, `${name}.png`);
      await page.screenshot({ path: file });
      seen.shots.push(file);
    };
    // htmx must be loaded (the CSP allows only our own scripts): wait for it where it matters.
    const htmxReady = () => page.waitForFunction(() => typeof window.htmx !== 'undefined');

    // Sign in.
    await page.goto(`${BASE}/people`);
    await page.waitForURL(/\/login$/);
    await page.waitForSelector('input[name=name]');
    await shot('01-sign-in');
    await page.fill('input[name=name]', env('WEB_USER'));
    await page.fill('input[name=password]', env('WEB_PASSWORD'));
    await Promise.all([page.waitForURL(`${BASE}/`), page.click('button[type=submit]')]);
    signedIn = true;
    await page.waitForSelector('text=Per directory');
    // The directory health is loaded by htmx after the page.
    await htmxReady();
    await page.waitForSelector('#health tbody tr');
    await shot('02-dashboard');

    // Find the person: type into the search box; htmx swaps the results in place.
    await page.click('nav >> text=People');
    await page.waitForURL(/\/people$/);
    await htmxReady();
    seen.people_before_search = await page.locator('#people tbody tr').count();
    await page.fill('#query', PERSON.split('@')[0]);
    // The swap is done when the URL carries the query and only the matching rows are left.
    await page.waitForFunction(() => window.location.search.includes('query='));
    await page.waitForFunction(
      (person) => {
        const rows = [...document.querySelectorAll('#people tbody tr')];
        return rows.length > 0 && rows.every((r) => r.textContent.includes(person));
      },
      PERSON,
    );
    const personLink = page.locator(`#people a[href="/people/${PERSON}"]`);
    seen.people_rows = await page.locator('#people tbody tr').count();
    await shot('03-people');
    await personLink.click();
    await page.waitForURL(new RegExp(`/people/${PERSON.replace(/[.@]/g, '\\$&')}$`));
    await page.waitForSelector('#publish');
    await shot('04-person');

    // Publish the uploaded certificate to the Exchange emulator, then to slapd.
    for (const dir of ['exo', 'corp']) {
      await page.setInputFiles('#publish input[type=file]', env('CERT'));
      await page.selectOption('#publish select[name=directory]', dir);
      await Promise.all([
        page.waitForURL(new RegExp(`ok=published&dir=${dir}$`)),
        page.click('#publish button[type=submit]'),
      ]);
      await page.waitForSelector(`text=Published to ${dir}.`);
    }
    seen.can_encrypt = await page.locator('text=Outlook / OWA can encrypt to them: yes').count();
    await page.screenshot({ path: path.join(SHOTS, '05-person-published.png'), fullPage: false });
    seen.shots.push(path.join(SHOTS, '05-person-published.png'));

    // The unpublish confirmation (not confirmed: the certificate stays).
    await page.locator('a:has-text("Unpublish")').first().click();
    await page.waitForSelector('#unpublish');
    await shot('06-unpublish-confirm');
    await page.click('text=Cancel');
    await page.waitForSelector('#publish');

    // Deployment: the deploy file and the files it names, the plan, apply with live progress.
    await page.click('nav >> text=Deployment');
    await page.waitForSelector('#plan-form');
    await page.fill('#plan-form textarea[name=deploy]', fs.readFileSync(env('DEPLOY'), 'utf8'));
    await page.setInputFiles('#plan-form input[name=files]', env('DEPLOY_FILES').split(':'));
    await shot('07-deploy');
    await Promise.all([page.waitForURL(/\/deploy\/plan$/), page.click('#plan-form button[type=submit]')]);
    await page.waitForSelector('#plan-text');
    seen.plan = await page.textContent('#plan-text');
    await shot('08-plan');
    await Promise.all([page.waitForURL(/\/deploy\/jobs\/w\d+$/), page.click('#apply')]);
    seen.job_url = page.url();
    // Live: the SSE fragments replace #live until the job ends; the page is never reloaded.
    await htmxReady();
    await page.evaluate(() => { window.__notReloaded = true; });
    await page.waitForFunction(() => {
      const s = document.querySelector('#job-state');
      return s && !/running/.test(s.textContent);
    });
    seen.job_state = (await page.textContent('#job-state')).trim();
    seen.live_without_reload = await page.evaluate(() => window.__notReloaded === true);
    seen.progress = await page.evaluate(() => {
      const p = document.querySelector('#job-progress');
      return p ? { value: p.value, max: p.max } : null;
    });
    seen.steps = await page.locator('#job-steps tbody tr').count();
    await shot('09-apply');

    // The audit log: the publishes and the apply's writes, by this user through the web.
    await page.click('nav >> text=Audit log');
    await page.waitForSelector('#audit tbody tr');
    seen.audit = await page.locator('#audit tbody tr').allTextContents();
    await shot('10-audit');

    // The other pages.
    for (const [nav, sel, name] of [
      ['Trust', 'h1:has-text("Trust chains")', '11-trust'],
      ['CA', 'h1:has-text("CA")', '12-ca'],
      ['Users', '#users', '13-users'],
      ['Settings', 'h1:has-text("Settings")', '14-settings'],
    ]) {
      await page.click(`nav >> text=${nav}`);
      await page.waitForSelector(sel);
      await shot(name);
    }

    // Sign out: back to the sign-in page, and the session is gone.
    signedIn = false;
    await Promise.all([page.waitForURL(/\/login$/), page.click('text=Sign out')]);
    const after = await page.goto(`${BASE}/people`);
    seen.after_sign_out = after.status();
    await page.waitForURL(/\/login$/);
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(seen));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
