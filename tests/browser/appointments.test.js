// Issue 16, as an owner sets up a team in Chromium: services, a staff member who offers
// only one of them, her own hours and a day off, through the node console's forms.

import test from 'node:test';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText, openConsole, workspaceWithNode } from './lib/steps.js';

test('a staff member gets her services, hours and day off', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const page = await (await browser.context()).newPage();
    await workspaceWithNode(page, cp, 'owner@appointments.test', 'Team Dental');
    await openConsole(page);
    await page.getByRole('link', { name: 'Appointments' }).click();
    await page.getByRole('heading', { name: 'Appointments', level: 1 }).waitFor();

    for (const name of ['Check-up', 'Whitening']) {
      await page.locator('#service_name').fill(name);
      await page.getByRole('button', { name: 'Add service' }).click();
      await page.getByRole('listitem').filter({ hasText: name }).waitFor();
    }
    await page.locator('#staff_name').fill('Ann');
    await page.getByRole('button', { name: 'Add staff member' }).click();
    await page.getByRole('link', { name: 'Ann' }).click();
    await page.getByRole('heading', { name: 'Ann', level: 1 }).waitFor();
    assert.match(await mainText(page), /Ann works the business's hours/);

    await page.getByRole('checkbox', { name: 'Check-up' }).check();
    await page.getByLabel('Tuesday').fill('09:00-12:00');
    await page.getByRole('button', { name: 'Save services and hours' }).click();
    await page.getByRole('heading', { name: 'Ann', level: 1 }).waitFor();
    assert.doesNotMatch(await mainText(page), /Request refused/);
    assert.match(await mainText(page), /Ann has hours of their own/);
    assert.equal(await page.getByRole('checkbox', { name: 'Check-up' }).isChecked(), true);
    assert.equal(await page.getByRole('checkbox', { name: 'Whitening' }).isChecked(), false);
    assert.equal(await page.getByLabel('Tuesday').inputValue(), '09:00-12:00');

    // Hours a person cannot mean are refused in words, and nothing changes.
    browser.expect(/status of 400 \(Bad Request\)/);
    await page.getByLabel('Wednesday').fill('nine to five');
    await page.getByRole('button', { name: 'Save services and hours' }).click();
    await page.getByText('Wednesday: write hours as 09:00-12:00').waitFor();
    await page.goBack();
    await page.reload();
    assert.equal(await page.getByLabel('Wednesday').inputValue(), '');

    await page.getByLabel('Date').fill('2026-12-24');
    await page.getByLabel('Why (optional)').fill('Christmas Eve');
    await page.getByRole('button', { name: 'Add day off' }).click();
    await page.getByRole('heading', { name: 'Ann', level: 1 }).waitFor();
    assert.match(await mainText(page), /Christmas Eve/);
  });
});
